"""Training and eval data: the embedded sample set, Places365 and image folders as WebDataset shards, the loader.

Import the submodules (``lama.data.prepare``, ``lama.data.loader`` ...) directly; this package imports nothing heavy.
"""
