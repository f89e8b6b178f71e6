"""Agents: controllers that drive a decoder through many calls (`generate` underneath).

* `infmem/`: InfMem's PreThink -> Retrieve -> Write bounded-memory reader and the MemAgent
  baseline ("InfMem: Learning System-2 Memory Control for Long-Context Agent", arXiv
  2602.02704), with the in-document BM25 index, batched episodes and the scripted oracle.
"""
