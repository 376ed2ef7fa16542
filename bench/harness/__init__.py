"""What every benchmark in bench/ shares, one module per job:

    checkout    which cuda_convnet is imported (this checkout when built in place)
    devices     where arrays live and how calls are timed on them (CPU / CUDA), the
                PyTorch baseline with every float32 path strict
    timing      repeat counts, rotation of input sets, medians and spreads
    validation  a result against the float64 reference (relative L2), row statuses
    report      the table, the run's environment and the JSON document
    cli         the command-line options every benchmark takes
    precision   --precision: the PyTorch baseline at each of our precisions, the rounded
                reference operands, the tolerances against the baseline
    versions    an op's kernel versions, and a backend with one forced (rows side by side)

Two devices behind one interface, so that the CPU mode (run by the tests on every
machine) goes through the same code as the GPU mode except for the device's methods.

Timing: warm up first (module load, cuDNN's algorithm search, allocator), then time every
call on its own (events on the GPU) and report the median; callers rotate among several
input sets so that a working set smaller than the last-level cache does not flatter the
numbers (``timing.rotation_sets``). Validation comes first and is separate: a row whose
output disagrees with the float64 reference is reported as MISMATCH and never timed.

Nothing here imports cuda_convnet at module level: a benchmark calls
``checkout.use_checkout()`` first, then imports the package.
"""
