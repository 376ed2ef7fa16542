"""kernel_bench's rows, one module per op family (each a ``cases(env)`` returning its
memory-bound rows; ``sgd`` and ``gemm`` run rows of their own kind):

    case        one memory-bound row: its inputs, ours, the reference, the baseline;
                validated, then timed
    lrn, pool, activation, dropout, softmax, channels, augment   memory-bound families
    sgd         one fused update over every AlexNet parameter tensor
    gemm        the fully connected layers' three GEMMs against torch.mm
"""

from kernel_cases import activation, augment, channels, dropout, lrn, pool, softmax

MEMORY_FAMILIES = (lrn, pool, activation, dropout, softmax, channels, augment)


def memory_cases(env):
    """Every memory-bound row, in the table's order."""
    return [case for family in MEMORY_FAMILIES for case in family.cases(env)]
