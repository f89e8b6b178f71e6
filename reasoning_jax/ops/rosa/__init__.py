"""ROSA: suffix-automaton retrieval on the host, and the branch that reads it on device.

"ROSA-Tuning: Enhancing Long-Context Modeling via Suffix Matching" (Yunao Zheng, Xiaojie Wang,
Lei Ren, Wei Chen; arXiv:2602.02499), after BlinkDL's ROSA (RWKV-v8).

  * `reference`: plain-Python suffix automaton, matcher and brute forces (the spec);
  * `sam`: the compiled (numba) automaton and matcher, parallel over routes;
  * `host`: validated numpy entry points (`match`, `self_match`, `RosaStreams`);
  * `config`: `RosaConfig`, the DESIGN CHOICE flags;
  * `branch`: the JAX op (`rosa_branch`), host callback + counterfactual `custom_vjp`
    (per device shard when a mesh splits the batch);
  * `overlap`, `stream`: the overlapped schedule (submit / collect) and decoding's host
    automata.
"""
