"""The hard-concrete distribution of L0 gates (Louizos, Welling & Kingma 2018, Section 3).

A gate z in [0, 1] with location log(alpha) and temperature beta: a binary concrete
variable s = sigmoid((log u - log(1 - u) + log alpha) / beta), u ~ U(0, 1), stretched to
(gamma, zeta) and clipped: z = min(1, max(0, s * (zeta - gamma) + gamma)). The stretch
gives z exactly 0 (or 1) with positive probability, and the probability that z is not 0,
1 - Q(s_bar <= 0) = sigmoid(log alpha - beta * log(-gamma / zeta)), is the differentiable
expected L0 norm of Eq. 12. Defaults are the paper's: beta = 2/3, gamma = -0.1, zeta = 1.1.
"""
import math

from keras import ops

BETA, GAMMA, ZETA = 2.0 / 3.0, -0.1, 1.1
# The reference implementation draws u in [EPSILON, 1 - EPSILON] so log u stays finite.
EPSILON = 1e-6


def check_params(beta=BETA, gamma=GAMMA, zeta=ZETA):
    """Raises a one-line ValueError for a temperature or stretch the distribution does not allow."""
    if not 0.0 < beta < 1.0:
        raise ValueError(f"beta={beta!r}: the temperature must be in (0, 1)")
    if not gamma < 0.0:
        raise ValueError(f"gamma={gamma!r}: the lower stretch limit must be < 0")
    if not zeta > 1.0:
        raise ValueError(f"zeta={zeta!r}: the upper stretch limit must be > 1")


def sample(log_alpha, u, beta=BETA, gamma=GAMMA, zeta=ZETA):
    """Gates z drawn with uniform noise `u` (the reparameterisation of Eq. 10)."""
    u = ops.clip(u, EPSILON, 1.0 - EPSILON)
    s = ops.sigmoid((ops.log(u) - ops.log(1.0 - u) + log_alpha) / beta)
    return ops.clip(s * (zeta - gamma) + gamma, 0.0, 1.0)


def deterministic(log_alpha, gamma=GAMMA, zeta=ZETA):
    """The test-time gate of Eq. 13: min(1, max(0, sigmoid(log alpha) * (zeta - gamma) + gamma))."""
    return ops.clip(ops.sigmoid(log_alpha) * (zeta - gamma) + gamma, 0.0, 1.0)


def prob_nonzero(log_alpha, beta=BETA, gamma=GAMMA, zeta=ZETA):
    """P(z != 0) = 1 - Q(s_bar <= 0): each gate's contribution to the expected L0 norm (Eq. 12)."""
    return ops.sigmoid(log_alpha - beta * math.log(-gamma / zeta))


def expected_l0(log_alpha, group_sizes=1.0, beta=BETA, gamma=GAMMA, zeta=ZETA):
    """The expected number of non-zero parameters: sum over gates of P(z != 0) times the number of
    parameters each gate switches (1 per weight gate, a neuron's fan-out for a neuron gate)."""
    return ops.sum(prob_nonzero(log_alpha, beta, gamma, zeta) * group_sizes)


def log_alpha_for_droprate(droprate):
    """The location whose (unstretched) gate is open with probability 1 - droprate: the reference
    implementation initialises log alpha at log(1 - d) - log(d), plus N(0, 0.01) noise."""
    if not 0.0 < droprate < 1.0:
        raise ValueError(f"droprate_init={droprate!r}: must be in (0, 1)")
    return math.log(1.0 - droprate) - math.log(droprate)
