"""``mamba-demo``: train a tiny Mamba language model on a real DNA sequence shipped with the project, then generate.

This is the README's first command: it needs no download and no GPU. It reads the human mitochondrial genome
(tests/data/dna/MT-human.fa, 16,569 bp), holds out its last 10% for validation, trains a next-nucleotide model for a
few hundred steps on random windows, prints the training and validation loss as they fall (against ln 4 = 1.386
nats, the loss of guessing among four bases), and finally continues a held-out prompt with the recurrent decoder.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from genomics.fasta import FastaReader
from genomics.tokenizer import DNATokenizer
from mamba_core import MambaConfig, MambaLMHeadModel
from mamba_core.utils import parameter_groups

DEFAULT_FASTA = Path(__file__).resolve().parents[1] / "tests" / "data" / "dna" / "MT-human.fa"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mamba-demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--fasta", type=Path, default=DEFAULT_FASTA, help="FASTA file to train on (first record)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--d-model", type=int, default=48)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--d-state", type=int, default=8)
    p.add_argument("--lr", type=float, default=4e-3)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--generate", type=int, default=120, help="nucleotides to generate after training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", type=Path, default=None, help="folder for save_pretrained (must not exist yet)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args(argv)


def load_tokens(path: Path) -> torch.Tensor:
    if not path.is_file():
        raise SystemExit(f"mamba-demo: {path}: no such FASTA file")
    reader = FastaReader(path)
    if len(reader) == 0:
        raise SystemExit(f"mamba-demo: {path}: the FASTA file holds no records")
    name = reader.names[0]
    return DNATokenizer().encode(reader.fetch(name)).long()


def random_windows(tokens: torch.Tensor, seq_len: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    starts = torch.randint(0, len(tokens) - seq_len - 1, (batch,), generator=gen)
    return torch.stack([tokens[s: s + seq_len + 1] for s in starts.tolist()])


@torch.no_grad()
def evaluate(model: MambaLMHeadModel, tokens: torch.Tensor, seq_len: int, device) -> float:
    """Mean next-token loss over consecutive windows covering the held-out tokens."""
    model.eval()
    n = (len(tokens) - 1) // seq_len
    windows = torch.stack([tokens[i * seq_len: i * seq_len + seq_len + 1] for i in range(n)]).to(device)
    logits = model(windows[:, :-1])
    loss = F.cross_entropy(logits.flatten(0, 1).float(), windows[:, 1:].flatten())
    model.train()
    return float(loss)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.save is not None and args.save.exists():
        raise SystemExit(f"mamba-demo: {args.save} exists; choose a new folder (nothing was overwritten)")
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    tokens = load_tokens(args.fasta)
    split = int(len(tokens) * 0.9)
    train_tokens, valid_tokens = tokens[:split], tokens[split:]
    if len(valid_tokens) <= args.seq_len + 1:
        raise SystemExit(f"mamba-demo: {args.fasta}: {len(tokens)} bases are too few for --seq-len {args.seq_len}")
    tok = DNATokenizer()
    config = MambaConfig(d_model=args.d_model, n_layer=args.n_layer, vocab_size=tok.vocab_size,
                         ssm_cfg={"d_state": args.d_state})
    model = MambaLMHeadModel(config).to(args.device)
    opt = torch.optim.AdamW(parameter_groups(model, 0.1), lr=args.lr, betas=(0.9, 0.95))
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"data   {args.fasta.name}: {len(train_tokens):,} training / {len(valid_tokens):,} held-out bases")
    print(f"model  Mamba LM, {args.n_layer} layers x d_model {args.d_model}, {n_params:,} parameters, {args.device}")
    print(f"train  {args.steps} steps of {args.batch_size} x {args.seq_len} bases; ln 4 = {math.log(4):.3f} nats")
    print(f"step {0:>5}  valid loss {evaluate(model, valid_tokens, args.seq_len, args.device):.3f}")
    start = time.time()
    bar = tqdm(range(1, args.steps + 1), desc="train", unit="step", leave=False)
    for step in bar:
        batch = random_windows(train_tokens, args.seq_len, args.batch_size, gen).to(args.device)
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1).float(), batch[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % args.eval_every == 0 or step == args.steps:
            valid = evaluate(model, valid_tokens, args.seq_len, args.device)
            tqdm.write(f"step {step:>5}  train loss {loss.item():.3f}  valid loss {valid:.3f}  "
                       f"({time.time() - start:.0f}s)")
    prompt = valid_tokens[: args.seq_len].to(args.device)[None]
    out = model.generate(prompt, args.generate, temperature=0.7, top_k=4,
                         generator=torch.Generator(device=args.device).manual_seed(args.seed))
    print("prompt     ..." + tok.decode(prompt[0, -60:]))
    print("generated  " + tok.decode(out[0, prompt.shape[1]:]))
    print("reference  " + tok.decode(valid_tokens[args.seq_len: args.seq_len + args.generate]))
    if args.save is not None:
        model.save_pretrained(args.save)
        print(f"saved      {args.save}")


if __name__ == "__main__":
    main()
