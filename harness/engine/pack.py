"""K models of one architecture trained as ONE program (a pack; harness.packed_trial runs it).

`PackedModel` stacks every parameter and buffer of its members into one tensor [K, ...] and runs
the forward pass of all members at once: `torch.func.vmap` over `functional_call` on a weightless
copy of the architecture, so a Linear becomes one batched matmul and a Conv2d one grouped
convolution, whatever the model. Each member keeps its own nn.Module, whose parameters and buffers
are views into the stacks: its state_dict, best weights, checkpoint and test evaluation are its
own, and an optimizer written for the member module updates the stack in place.

    pack = PackedModel(modules, generators)   # modules built one by one, exactly as each trial alone
    out = pack(x)                             # x [K, B, ...] (one batch per member) -> [K, B, classes]
    pack.restack([0, 2, 3])                   # members 1 stopped: shed it, the rest go on

An MLP (nn.Sequential of Flatten, Linear, elementwise activations and Dropout) skips vmap: each Linear is
one batched matmul written out (`_mlp_forward`), a third faster than vmap's own on a small MLP. On a CPU,
a model with convolutions runs its members one after another inside the pack (`_loop_forward`): vmap
turns K convolutions into one grouped convolution, which the CPU runs 1.6x slower than K separate ones
(s4_smallcnn, `python -m harness.bench --packed`); the pack still shares the data pipeline, the
optimizer step and the epoch's bookkeeping.

Randomness: each member has its own generator (`generators[k]`: where the global RNG stood after that
member's model was built). The loop route runs each member's forward on it; the mlp and vmap routes
draw each member's nn.Dropout masks from it as torch's CPU dropout draws them (bernoulli of the
input's shape and layout, scaled by 1/(1-p)). On the CPU a member drops exactly the units it drops
alone. BatchNorm: running statistics are stacked buffers, per member.
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap


class PackDropout(nn.Module):
    """nn.Dropout inside a pack: multiplies by the `noise` buffer the pack draws per member and step."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.register_buffer("noise", None, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * self.noise


def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, leaf = name.rpartition(".")
    return (module.get_submodule(path) if path else module), leaf


class PackedModel:
    def __init__(self, modules: Sequence[nn.Module], generators: Optional[Sequence[torch.Generator]] = None,
                 input_shape: Optional[Sequence[int]] = None):
        self.members = list(modules)
        self.generators = list(generators) if generators is not None else None
        first = self.members[0]
        self.param_names = [n for n, _ in first.named_parameters()]
        self.trainable = {n: p.requires_grad for n, p in first.named_parameters()}
        self.buffer_names = [n for n, b in first.named_buffers() if b is not None]
        self.template = copy.deepcopy(first).to("meta")
        self.training = True
        device = next(iter(first.parameters())).device
        convolutional = any(isinstance(m, nn.modules.conv._ConvNd) for m in self.template.modules())
        self.mode = "mlp" if _is_plain_mlp(self.template) else \
            "loop" if convolutional and device.type == "cpu" else "vmap"
        # mlp and vmap: nn.Dropout -> PackDropout, drawn per member here, with the shape and memory layout of
        # each one's input (one probe forward). loop: each member's forward runs on its own RNG stream instead
        # (any random op of the model then draws exactly what it draws alone)
        self.dropouts: dict[str, float] = {}
        if self.mode != "loop":
            for name, sub in list(self.template.named_modules()):
                if type(sub) is nn.Dropout and sub.p > 0:
                    owner, leaf = _owner(self.template, name)
                    setattr(owner, leaf, PackDropout(sub.p))
                    self.dropouts[name] = sub.p
        self.noise_layout: dict[str, tuple[tuple[int, ...], bool]] = {}
        if self.dropouts:
            if input_shape is None:
                raise ValueError("a pack of models with dropout needs the input shape")
            self._probe(first, input_shape)
        self.restack(range(len(self.members)))

    def _probe(self, module: nn.Module, input_shape) -> None:
        """Each dropout's per-sample input shape and whether it is channels_last (where its noise is drawn)."""
        probe = copy.deepcopy(module).eval()
        hooks = []
        for name in self.dropouts:
            def hook(_mod, args, name=name):
                x = args[0]
                cl = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
                self.noise_layout[name] = (tuple(x.shape[1:]), cl)
            hooks.append(probe.get_submodule(name).register_forward_pre_hook(hook))
        device = next(iter(module.parameters())).device
        x = torch.zeros(1, *input_shape, device=device)
        first = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
        if first is not None and first.weight.is_contiguous(memory_format=torch.channels_last) \
                and not first.weight.is_contiguous():
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            probe(x)
        for h in hooks:
            h.remove()

    # ---------------------------------------------------------------------------------- stacking

    def restack(self, active: Sequence[int]) -> None:
        """Stack the `active` members (indices into `members`, in this order) and point each one's
        module at its slice; members left out keep their current values and no longer change."""
        self.active = list(active)
        modules = [self.members[k] for k in self.active]
        self.params, self.buffers = {}, {}
        for name in self.param_names:
            stacked = torch.stack([m.get_parameter(name).detach() for m in modules])
            self.params[name] = stacked.requires_grad_(self.trainable[name])
            for j, m in enumerate(modules):
                m.get_parameter(name).data = stacked.detach()[j]
        for name in self.buffer_names:
            stacked = torch.stack([m.get_buffer(name) for m in modules])
            self.buffers[name] = stacked
            for j, m in enumerate(modules):
                owner, leaf = _owner(m, name)
                owner._buffers[leaf] = stacked[j]

    def __len__(self) -> int:
        return len(self.active)

    def grads(self) -> dict[str, torch.Tensor]:
        """The stacked gradients of the trainable parameters (after backward)."""
        return {n: p.grad for n, p in self.params.items() if p.requires_grad and p.grad is not None}

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    # ---------------------------------------------------------------------------------- forward

    def train(self, mode: bool = True) -> "PackedModel":
        self.training = mode
        self.template.train(mode)
        for m in self.members:
            m.train(mode)
        return self

    def eval(self) -> "PackedModel":
        return self.train(False)

    def noise(self, batch_size: int, device) -> dict[str, torch.Tensor]:
        """This step's dropout noise of every active member, from its own generator, in forward order."""
        if not (self.training and self.dropouts):
            return {}
        per_member = {name: [] for name in self.dropouts}
        for k in self.active:
            g = self.generators[k] if self.generators is not None else None
            for name, p in self.dropouts.items():
                shape, channels_last = self.noise_layout[name]
                fmt = torch.channels_last if channels_last else torch.contiguous_format
                mask = torch.empty((batch_size, *shape), device=device, memory_format=fmt)
                per_member[name].append(mask.bernoulli_(1 - p, generator=g).div_(1 - p))
        return {f"{name}.noise": torch.stack(masks) for name, masks in per_member.items()}

    def __call__(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Every active member's output [K, B, ...]: x is [K, B, ...] (each member's own batch), or
        [B, ...] given to all (`shared`: evaluation)."""
        batch = x.shape[0] if shared else x.shape[1]
        noise = self.noise(batch, x.device)
        if self.mode == "mlp":
            return self._mlp_forward(x, shared, noise)
        if self.mode == "loop":
            return self._loop_forward(x, shared, noise)
        buffers = {**self.buffers, **noise}

        def one(params, buffers, x):
            return functional_call(self.template, (params, buffers), (x,))

        # randomness "different": a random op other than nn.Dropout (Dropout2d, F.dropout) draws per member
        return vmap(one, in_dims=(0, 0, None if shared else 0), randomness="different")(self.params, buffers, x)

    def _loop_forward(self, x: torch.Tensor, shared: bool, noise: dict) -> torch.Tensor:
        """Each member's forward pass in turn, on its slices of the stacks (unbound once: their gradients
        go back into the stacks in one op per parameter) and, in training, on its own RNG stream."""
        params = {n: p.unbind(0) for n, p in self.params.items()}
        buffers = {n: b.unbind(0) for n, b in {**self.buffers, **noise}.items()}
        own_rng = self.training and self.generators is not None
        outputs = []
        for j, k in enumerate(self.active):
            state = {n: p[j] for n, p in params.items()} | {n: b[j] for n, b in buffers.items()}
            if own_rng:
                saved = torch.get_rng_state()
                torch.set_rng_state(self.generators[k].get_state())
            try:
                outputs.append(functional_call(self.template, state, (x if shared else x[j],)))
            finally:
                if own_rng:
                    self.generators[k].set_state(torch.get_rng_state())
                    torch.set_rng_state(saved)
        return torch.stack(outputs)

    def _mlp_forward(self, x: torch.Tensor, shared: bool, noise: dict) -> torch.Tensor:
        """The forward pass of a plain MLP over the stacks: Linear -> baddbmm (a shared batch is broadcast to
        every member in the first one), activations and dropout as they are, elementwise."""
        h = x
        for name, module in self.template.named_children():
            if isinstance(module, nn.Flatten):
                h = h.flatten(1) if shared else h.flatten(2)
            elif isinstance(module, nn.Linear):
                weight = self.params[f"{name}.weight"].transpose(1, 2)
                bias = self.params.get(f"{name}.bias")
                h = torch.matmul(h, weight) if shared else torch.bmm(h, weight)  # [B, in] @ [K, in, out] -> [K, B, out]
                if bias is not None:
                    h = h + bias.unsqueeze(1)
                shared = False
            elif isinstance(module, PackDropout):
                if self.training and module.p > 0:
                    h = h * noise[f"{name}.noise"]  # [K, B, ...]: every member's own from here on
                    shared = False
            else:
                h = module(h)
        return h


# parameter-free activations that act on each value alone: the same on [K, B, F] as on [B, F]
ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SELU, nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid,
               nn.Softplus, nn.Hardswish, nn.Hardsigmoid, nn.CELU, nn.Identity, nn.Hardtanh, nn.Softsign)


def _is_plain_mlp(template: nn.Module) -> bool:
    """Whether `template` is a Sequential of Flatten, Linear, elementwise activations and dropout only."""
    if type(template) is not nn.Sequential:
        return False
    for module in template.children():
        if isinstance(module, nn.Flatten):
            if module.start_dim != 1 or module.end_dim != -1:
                return False
        elif not (isinstance(module, (nn.Linear, PackDropout, *ELEMENTWISE)) or type(module) is nn.Dropout):
            return False
    return True
