"""The paper's figures and ablations, one module each (run by `experiment` and `figure`).

    relu_tanh.py    Figure 1: a four-layer conv net with ReLU vs tanh units (§3.1)
    ablate.py       §3.2-§4.2 and §7: the full model against one change at a time
    filters.py      Figure 3: conv1's kernels, the two towers in two blocks, colour specificity
    top5.py         Figure 4 (left): an image and its five most probable labels
    neighbours.py   Figure 4 (right): the training images nearest in the last hidden layer
    report.py       one Markdown page from the runs' outputs
    paper.py        the paper's reported numbers, quoted, for comparison
    data.py         the data these run on: the bundled digits, a prepared store, CIFAR-10
    plotting.py     matplotlib set-up shared by the figures

Every run writes into its output folder a PNG, a JSON record (the numbers, the command
line, the times) and, where there is a table, a Markdown file; report.py reads those.
"""
