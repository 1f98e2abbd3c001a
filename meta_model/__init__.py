"""The meta model: compiled weight blocks in, RASP program rows out."""
