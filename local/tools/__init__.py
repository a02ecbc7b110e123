"""Tools run on the local stack: the demo (`make demo`) and the chaos run (`make chaos`)."""
