"""The paper's own numbers for what experiments/ measures (Krizhevsky, Sutskever, Hinton 2012).

Each entry quotes the sentence it comes from. Deltas are the error the paper reports
*added* by undoing the design choice (percentage points of ILSVRC error, top-1 / top-5);
None where the paper gives no number.
"""
from __future__ import annotations

# Figure 1: "reaches a 25% training error rate on CIFAR-10 six times faster than an
# equivalent network with tanh neurons".
RELU_TANH = {"target_train_error": 0.25, "speedup": 6.0, "data": "CIFAR-10",
             "quote": "A four-layer convolutional neural network with ReLUs (solid line) reaches a 25% training "
                      "error rate on CIFAR-10 six times faster than an equivalent network with tanh neurons"}

# variant -> (top-1 delta, top-5 delta, section, quote)
ABLATION_DELTAS = {
    "no-lrn": (1.4, 1.2, "§3.3", "Response normalization reduces our top-1 and top-5 error rates by 1.4% and 1.2%"),
    "pool-2/2": (0.4, 0.3, "§3.4", "This scheme reduces the top-1 and top-5 error rates by 0.4% and 0.3%, "
                                   "respectively, as compared with the non-overlapping scheme s=2, z=2"),
    "no-dropout": (None, None, "§4.2", "Without dropout, our network exhibits substantial overfitting."),
    "one-tower": (1.7, 1.2, "§3.2", "This scheme reduces our top-1 and top-5 error rates by 1.7% and 1.2%, "
                                    "respectively, as compared with a net with half as many kernels in each "
                                    "convolutional layer trained on one GPU"),
    "no-lighting": (1.0, None, "§4.1", "This scheme reduces the top-1 error rate by over 1%."),
    "no-conv4": (2.0, None, "§7", "removing any of the middle layers results in a loss of about 2% for the "
                                  "top-1 performance of the network"),
}

# Figure 3: "The kernels on GPU 1 are largely color-agnostic, while the kernels on GPU 2
# are largely color-specific."
FILTERS_QUOTE = ("The kernels on GPU 1 are largely color-agnostic, while the kernels on GPU 2 are largely "
                 "color-specific.")

# Figure 4: "six training images that produce feature vectors in the last hidden layer with
# the smallest Euclidean distance from the feature vector for the test image"
NEIGHBOURS = 6
