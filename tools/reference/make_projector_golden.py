"""Golden outputs of TokLIP's projector for projector/projector_test.go: LLaVA's
build_vision_projector ("mlp{depth}x_gelu": Linear, then activation + Linear depth-1 times) for each
activation toklip reads (<arch>.projector.activation: gelu = nn.GELU(), exact erf; gelu_tanh =
nn.GELU(approximate="tanh"); silu = nn.SiLU()), at depths 1, 2 and 3, in float64 from seeded
weights. The weights, inputs and outputs go in one JSON file; the Go test writes the weights into
a GGUF and runs them through ggml.
  /usr/bin/python3 tools/reference/make_projector_golden.py --out projector/testdata/golden.json
"""

import argparse
import json

import torch

IN, HIDDEN, N = 12, 16, 5
ACTIVATIONS = {
    "gelu": lambda: torch.nn.GELU(),
    "gelu_tanh": lambda: torch.nn.GELU(approximate="tanh"),
    "silu": lambda: torch.nn.SiLU(),
}


def projector(depth, activation):
    layers = [torch.nn.Linear(IN, HIDDEN)]
    for _ in range(1, depth):
        layers += [ACTIVATIONS[activation](), torch.nn.Linear(HIDDEN, HIDDEN)]
    return torch.nn.Sequential(*layers).double()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(13)
    cases = []
    for depth in (1, 2, 3):
        for activation in ACTIVATIONS:
            if depth == 1 and activation != "gelu":
                continue  # one layer has no activation
            mlp = projector(depth, activation)
            # Features of TokLIP's scale (post-LayerNorm, around unit variance) and some large
            # ones, where the GELU forms differ most.
            x = torch.randn(N, IN, dtype=torch.float64) * torch.tensor([1, 1, 1, 3, 0.1], dtype=torch.float64)[:, None]
            with torch.no_grad():
                y = mlp(x)
            linears = [m for m in mlp if isinstance(m, torch.nn.Linear)]
            cases.append({
                "depth": depth,
                "activation": activation,
                # PyTorch's [out, in] weight is ggml's [in, out] (ne0 = in): the same row-major bytes.
                "weights": [l.weight.detach().reshape(-1).tolist() for l in linears],
                "biases": [l.bias.detach().tolist() for l in linears],
                "input": x.reshape(-1).tolist(),  # N rows of IN: ggml [IN, N]
                "output": y.reshape(-1).tolist(),  # N rows of HIDDEN: ggml [HIDDEN, N]
            })
    with open(args.out, "w") as f:
        json.dump({"in": IN, "hidden": HIDDEN, "n": N, "cases": cases}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
