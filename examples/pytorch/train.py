"""Train the digits CNN: logs loss and accuracy each epoch and writes outputs/model.pt.

Run as a job (``run.py`` submits it), where ``Run.get_context()`` finds its run,
or by hand, where an offline run prints what would be logged.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from model import DigitsCNN, as_images, device
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from cumulo import Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=16)
    args = parser.parse_args()
    run = Run.get_context()
    torch.manual_seed(0)
    where = device()
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    x_train = as_images(torch.tensor(x_train, dtype=torch.float32)).to(where)
    x_test = as_images(torch.tensor(x_test, dtype=torch.float32)).to(where)
    y_train = torch.tensor(y_train).to(where)
    y_test = torch.tensor(y_test).to(where)
    model = DigitsCNN(args.channels).to(where)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    run.log_params({**vars(args), "device": where.type})
    print(
        f"training on {where} ({torch.cuda.get_device_name(0) if where.type == 'cuda' else 'CPU'})"
    )
    started = time.perf_counter()
    accuracy = 0.0
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), device=where)
        total = 0.0
        for start in range(0, len(order), args.batch):
            batch = order[start : start + args.batch]
            optimiser.zero_grad()
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimiser.step()
            total += float(loss) * len(batch)
        model.eval()
        with torch.no_grad():
            logits = model(x_test)
            accuracy = float((logits.argmax(1) == y_test).float().mean())
            run.log("loss", total / len(x_train), step=epoch)
            run.log("val_loss", float(loss_fn(logits, y_test)), step=epoch)
            run.log("accuracy", accuracy, step=epoch)
        print(f"epoch {epoch}: loss {total / len(x_train):.4f} accuracy {accuracy:.4f}")
    run.log("train_seconds", time.perf_counter() - started)
    outputs = Path("outputs")
    outputs.mkdir(exist_ok=True)
    torch.save({"state": model.cpu().state_dict(), "channels": args.channels}, outputs / "model.pt")
    print(f"accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
