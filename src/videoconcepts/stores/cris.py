"""CRIS shard stores (kind ``cris_shard``): the metric of every video under one shard's masks.

Masks are not stored: all of them are drawn at once from the seed
(:func:`videoconcepts.methods.cris.sample_masks`), and a shard records which range it
holds (``mask_start``, ``mask_stop``, ``planned_stop`` attributes).
"""

KIND = "cris_shard"
