"""The paper's reported numbers, printed beside ours so that a report can be read on its own."""

from __future__ import annotations

# MNIST-SVHN, medians over 5 runs (paper Tables 1-3; x1 = MNIST, x2 = SVHN). Percentages for
# accuracies and coherences, FIDs on Inception features.
PAPER_MNIST_SVHN: dict[str, dict[str, float | None]] = {
    "mvae": {
        "latent/mnist": 79.8,
        "latent/svhn": 65.1,
        "latent/all": 80.2,
        "joint/prior": 38.0,
        "joint/gmm": 68.5,
        "cross/mnist->svhn": 31.8,
        "cross/svhn->mnist": 57.1,
        "fid/unconditional_prior/mnist": 21.2,
        "fid/unconditional_prior/svhn": 68.2,
        "fid/unconditional_gmm/mnist": 13.4,
        "fid/unconditional_gmm/svhn": 73.7,
        "fid/conditional/mnist->svhn": 65.0,
        "fid/conditional/svhn->mnist": 19.3,
        "fid/class_conditional/mnist->svhn": 83.8,
        "fid/class_conditional/svhn->mnist": 53.6,
    },
    "mmvae": {
        "latent/mnist": 91.3,
        "latent/svhn": 68.0,
        "latent/all": None,
        "joint/prior": 42.1,
        "joint/gmm": 80.3,
        "cross/mnist->svhn": 86.4,
        "cross/svhn->mnist": 69.1,
        "fid/unconditional_prior/mnist": 36.6,
        "fid/unconditional_prior/svhn": 98.9,
        "fid/unconditional_gmm/mnist": 28.7,
        "fid/unconditional_gmm/svhn": 119.7,
        "fid/conditional/mnist->svhn": 97.0,
        "fid/conditional/svhn->mnist": 28.6,
        "fid/class_conditional/mnist->svhn": 125.3,
        "fid/class_conditional/svhn->mnist": 52.6,
    },
    "dmvae": {
        "latent/mnist": 95.0,
        "latent/svhn": 79.9,
        "latent/all": 92.9,
        "joint/prior": None,
        "joint/gmm": 85.9,
        "cross/mnist->svhn": 91.6,
        "cross/svhn->mnist": 76.4,
        "fid/unconditional_prior/mnist": None,
        "fid/unconditional_prior/svhn": None,
        "fid/unconditional_gmm/mnist": 15.7,
        "fid/unconditional_gmm/svhn": 57.3,
        "fid/conditional/mnist->svhn": 67.6,
        "fid/conditional/svhn->mnist": 18.7,
        "fid/class_conditional/mnist->svhn": 91.9,
        "fid/class_conditional/svhn->mnist": 23.3,
    },
}
