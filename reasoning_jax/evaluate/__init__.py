"""Evaluation and attacks: adversarial attacks on trained models and their evaluation."""
