"""The sections of benchmarks/compare.py, one module each: rank (the rank paper's 2x2 experiment), randoms (random
problems), rhs (one right-hand side), scaling (flow_many on 1 and 2 threads), memory (per trajectory), scale (large
random datasets against the cost of a GD epoch); with the methods, their accuracy, one workload, and the report."""
