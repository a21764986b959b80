"""What this machine can do for a run: intra-op threads, the precision that pays, and the
process group when several processes train one model."""
