"""The optimizers of a pack: each member has its own optimizer and learning-rate schedule, as alone.

`PackOptimizer.step()` updates every active member. Members whose optimizer is SGD, SGD with
Nesterov momentum, Adam or AdamW are updated together, one rule per kind over the stacked tensors,
with each member's hyperparameters (lr, momentum, weight decay, betas, eps) as per-member tensors:
a handful of ops per parameter stack whatever the number of members. The other kinds (RMSprop,
Adagrad, Adadelta, NAdam, RAdam) step a real torch optimizer per member, on the member module's
parameters (views into the stacks). `rule="torch"` steps every member that way (the benchmarks
compare the two).

Written by hand, the four stacked rules, because torch's optimizers take one learning rate per
parameter tensor and the members' differ inside one stacked tensor; each rule is torch's own
update (torch/optim/sgd.py, adam.py, adamw.py: no amsgrad, no maximize, no dampening), and
tests/test_pack.py holds them to torch's per-member updates.

Each member's hyperparameters live in a real torch optimizer of its kind (`MemberOptimizer.shadow`,
built over one placeholder tensor per parameter group and never stepped): the member's scheduler
drives it exactly as it drives the optimizer of a trial alone (OneCycle's momentum too), and the
rules read lr, momentum and betas from it each step.
"""

from __future__ import annotations

from typing import Sequence

import torch

from harness.optimizers import create_optimizer, param_groups
from harness.registry import OPTIMIZERS

STACKED = ("sgd", "sgd_nesterov", "adam", "adamw")
SLOTS = {"sgd": ("momentum_buffer",), "sgd_nesterov": ("momentum_buffer",),
         "adam": ("exp_avg", "exp_avg_sq"), "adamw": ("exp_avg", "exp_avg_sq")}


class MemberOptimizer:
    """One member's optimizer as its trial sees it (TrialProgress checkpoints it, the scheduler drives
    `param_groups`): the hyperparameters of its kind, and its slice of the pack's optimizer state."""

    def __init__(self, module, cfg, device_type: str, stacked: bool):
        self.kind, self.stacked = cfg.name, stacked
        groups = param_groups(module, cfg.group_lr)
        names = {id(p): n for n, p in module.named_parameters()}
        # torch's order of the parameters (its state_dict's indices) and each one's group
        self.order = [names[id(p)] for g in groups for p in g["params"]]
        self.leaf_group = {names[id(p)]: i for i, g in enumerate(groups) for p in g["params"]}
        if stacked:
            placeholders = [{**{k: v for k, v in g.items() if k != "params"}, "params": [torch.zeros(1)]}
                            for g in groups]
            self.shadow = OPTIMIZERS.get(cfg.name)(placeholders, cfg, "cpu")
        else:
            self.shadow = create_optimizer(module, cfg, device_type)
        self.state: dict[str, torch.Tensor] = {}  # "<slot>.<param name>" and "step": views into the pack's stacks

    @property
    def param_groups(self) -> list[dict]:
        return self.shadow.param_groups

    def state_dict(self) -> dict:
        """torch's own layout (as the same optimizer alone saves it): a checkpoint taken in a pack resumes
        the trial alone, and one taken alone resumes it in a pack."""
        if not self.stacked:
            return self.shadow.state_dict()
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [i for i, n in enumerate(self.order) if self.leaf_group[n] == gi]}
                  for gi, g in enumerate(self.shadow.param_groups)]
        state = {}
        for i, name in enumerate(self.order):
            entry = {slot: self.state[f"{slot}.{name}"].detach().clone() for slot in SLOTS[self.kind]}
            if "step" in self.state:
                entry["step"] = self.state["step"].detach().clone()
            state[i] = entry
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, saved: dict) -> None:
        if not self.stacked:
            self.shadow.load_state_dict(saved)
            return
        for group, old in zip(self.shadow.param_groups, saved["param_groups"]):
            group.update({k: v for k, v in old.items() if k != "params"})
        with torch.no_grad():
            for i, name in enumerate(self.order):
                entry = saved["state"].get(i, {})
                for slot in SLOTS[self.kind]:
                    value = entry.get(slot)  # None: torch kept none (SGD without momentum, before a step)
                    target = self.state[f"{slot}.{name}"]
                    target.copy_(value) if value is not None else target.zero_()
                if "step" in self.state and i == 0:
                    self.state["step"].fill_(float(entry.get("step", 0.0)))


class PackOptimizer:
    def __init__(self, pack, configs: Sequence, device_type: str, rule: str = "stacked"):
        if rule not in ("stacked", "torch"):
            raise ValueError(f"unknown pack optimizer rule '{rule}'")
        self.pack = pack
        self.members = [MemberOptimizer(m, cfg, device_type, rule == "stacked" and cfg.name in STACKED)
                        for m, cfg in zip(pack.members, configs)]
        self.device = next(iter(pack.params.values())).device
        self._hypers: dict[str, tuple] = {}
        self.trainable = [n for n in pack.param_names if pack.trainable[n]]
        for member in self.members:
            if member.stacked:
                member.state["step"] = torch.zeros((), device=self.device)
                for slot in SLOTS[member.kind]:
                    for name in self.trainable:
                        member.state[f"{slot}.{name}"] = torch.zeros_like(pack.params[name][0])
        self.restack()

    def restack(self) -> None:
        """Follow the pack's active members: stack their state per kind (each kind a contiguous run of
        the pack's order when the pack is built kind by kind, else gathered)."""
        self.kinds: dict[str, list[int]] = {}  # kind -> positions in the pack of the members it updates
        for j, k in enumerate(self.pack.active):
            if self.members[k].stacked:
                self.kinds.setdefault(self.members[k].kind, []).append(j)
        self.state: dict[str, dict[str, torch.Tensor]] = {}
        for kind, positions in self.kinds.items():
            members = [self.members[self.pack.active[j]] for j in positions]
            stacks = {}
            for key in members[0].state:
                stacks[key] = torch.stack([m.state[key] for m in members])
                for i, m in enumerate(members):
                    m.state[key] = stacks[key][i]
            self.state[kind] = stacks
        self.slices = {kind: (slice(p[0], p[-1] + 1) if p == list(range(p[0], p[-1] + 1)) else None)
                       for kind, p in self.kinds.items()}
        self.alone = [(j, self.members[k]) for j, k in enumerate(self.pack.active) if not self.members[k].stacked]

    def hypers(self, kind: str) -> dict[int, dict]:
        """This step's hyperparameters of the members of `kind`, per parameter group: [members] float32
        tensors ready for the update (Adam's bias-corrected step size included), and flags for the terms
        no member uses (skipped). Read from each member's groups (its scheduler may move them); the
        tensors are made again only when a value changed."""
        members = [self.members[self.pack.active[j]] for j in self.kinds[kind]]
        adam = kind in ("adam", "adamw")
        keys = ("lr", "betas", "eps", "weight_decay") if adam else ("lr", "momentum", "weight_decay", "nesterov")
        values = tuple(tuple(tuple(m.param_groups[gi][key] for key in keys) for m in members)
                       for gi in range(len(members[0].param_groups)))
        steps = self.state[kind].get("step")
        cached = self._hypers.get(kind)
        if cached is not None and cached[0] == values and not adam:
            return cached[1]
        out = {}
        for gi, rows in enumerate(values):
            # float64 first, as torch computes Adam's bias corrections (1 - beta^t) and 1 - beta2 in double:
            # in float32 they are off by ~1e-5 relative (1 - 0.999), a drift the losses show within an epoch
            col = {key: torch.tensor([r[i] if key != "betas" else r[i][0] for r in rows], dtype=torch.float64,
                                     device=self.device) for i, key in enumerate(keys)}
            h = {"lr": col["lr"].float(), "weight_decay": col["weight_decay"].float(),
                 "decay": any(r[keys.index("weight_decay")] for r in rows)}
            if adam:
                beta1 = col["betas"]
                beta2 = torch.tensor([r[1][1] for r in rows], dtype=torch.float64, device=self.device)
                t = steps.double()
                h.update(step_size=(col["lr"] / (1 - beta1 ** t)).float(),
                         bias_correction2_sqrt=(1 - beta2 ** t).sqrt().float(),
                         beta1=beta1.float(), beta2=beta2.float(), grad_sq_weight=(1 - beta2).float(),
                         eps=col["eps"].float())
            else:
                h.update(momentum=col["momentum"].float(), nesterov=col["nesterov"] > 0,
                         any_momentum=any(r[keys.index("momentum")] for r in rows),
                         any_nesterov=any(r[keys.index("nesterov")] for r in rows))
            out[gi] = h
        self._hypers[kind] = (values, out)
        return out

    @torch.no_grad()
    def step(self) -> None:
        grads = self.pack.grads()
        for kind, positions in self.kinds.items():
            where = self.slices[kind]
            index = None if where is not None else torch.tensor(positions, device=self.device)
            state = self.state[kind]
            if "step" in state:
                state["step"].add_(1)
            hypers = self.hypers(kind)
            group_of = self.members[self.pack.active[positions[0]]].leaf_group
            for name in self.trainable:
                if name not in grads:
                    continue
                param, grad = self.pack.params[name], grads[name]
                p = param.detach()[where] if where is not None else param.detach().index_select(0, index)
                g = grad[where] if where is not None else grad.index_select(0, index)
                shape = (len(positions),) + (1,) * (p.dim() - 1)
                h = {k: (v.view(shape) if isinstance(v, torch.Tensor) else v) for k, v in hypers[group_of[name]].items()}
                if kind in ("adam", "adamw"):
                    _adam(kind, p, g, state[f"exp_avg.{name}"], state[f"exp_avg_sq.{name}"], h)
                else:
                    _sgd(p, g, state[f"momentum_buffer.{name}"], h)
                if where is None:
                    param.detach().index_copy_(0, index, p)
        for j, member in self.alone:  # torch's own optimizer on the member's parameters (views)
            for name, p in member_params(self.pack, j):
                if name in grads:
                    p.grad = grads[name][j]
            member.shadow.step()


def member_params(pack, j: int):
    module = pack.members[pack.active[j]]
    return [(n, module.get_parameter(n)) for n in pack.param_names if pack.trainable[n]]


def _sgd(p, g, buf, h: dict) -> None:
    """torch.optim.SGD (dampening 0): d = g + wd p; buf = m buf + d (buf = d at the first step, which
    is the same with buf starting at 0); d = d + m buf (Nesterov) or buf; p -= lr d. Terms no member
    uses are skipped."""
    d = g + h["weight_decay"] * p if h["decay"] else g
    if h["any_momentum"]:
        buf.mul_(h["momentum"]).add_(d)
        d = torch.where(h["nesterov"], d + h["momentum"] * buf, buf) if h["any_nesterov"] else buf
    p.sub_(h["lr"] * d)


def _adam(kind, p, g, m, v, h: dict) -> None:
    """torch.optim.Adam / AdamW: weight decay as L2 (Adam) or decoupled (AdamW), then
    m = lerp(m, g, 1 - b1); v = b2 v + (1 - b2) g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""
    if h["decay"]:
        if kind == "adamw":
            p.mul_(1 - h["lr"] * h["weight_decay"])
        else:
            g = g + h["weight_decay"] * p
    m.lerp_(g, 1 - h["beta1"])
    v.mul_(h["beta2"]).addcmul_(g * h["grad_sq_weight"], g)
    denom = (v.sqrt() / h["bias_correction2_sqrt"]).add_(h["eps"])
    p.sub_(h["step_size"] * m / denom)
