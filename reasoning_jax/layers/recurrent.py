"""What the recurrent (constant-state) mixers share: GLA, OVQ and the ones to come.

Recurrent mixers carry one state per row through the sequence, so a packed row (several
sequences separated by `segment_ids`) would leak state across sequence boundaries; they take
padded, unpacked batches only.
"""

from __future__ import annotations


def check_unpacked(segment_ids, mixer: str) -> None:
  """Raises if `segment_ids` is given: recurrent mixers do not support packed sequences."""
  if segment_ids is not None:
    raise NotImplementedError(
      f"mixer {mixer!r} is recurrent and does not support packed sequences (segment_ids); "
      "feed padded, unpacked batches (e.g. make_sft_dataset(..., packing=False))"
    )
