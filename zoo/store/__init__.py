"""Files zoo keeps: atomic writes and guarded folders, run folders, the cache, checkpoints, pretrained weight
files and their download, the Hugging Face Hub."""
