"""The edges: everything that touches files, processes, clocks or the network."""
