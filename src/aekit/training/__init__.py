"""Training: the configs of a run, its folder (save, load, resume), and the one loop.

``config`` (how a model is trained), ``runs`` (a run folder and ``RunConfig``), ``loop`` (the
``train`` loop), ``step`` (the step shared by training and evaluation), ``training_data`` (what a
run trains on), ``objectives`` (losses, corruptions, sparsity: pure tensor functions),
``schedules``, ``guard`` (spikes undone, collapse reported), ``fastpath`` (bf16, channels_last,
compile), ``distributed`` (torchrun), ``splits``, ``report``, ``tblog`` and ``card`` (what each
epoch writes).
"""
