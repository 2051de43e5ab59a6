"""The same MLP epoch in PyTorch (optional peer; used only if torch imports).
Usage: python3 torch_mlp.py THREADS"""
import gzip, sys, time
import numpy as np
import torch

torch.set_num_threads(int(sys.argv[1]))
d = "/usr/share/datasets/fashion-mnist"
with gzip.open(f"{d}/train-images-idx3-ubyte.gz") as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255
with gzip.open(f"{d}/train-labels-idx1-ubyte.gz") as f:
    y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
x = (x - x.mean(0)) / (x.std(0) + 1e-6)
X, Y = torch.from_numpy(x), torch.from_numpy(y)
model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
opt = torch.optim.Adam(model.parameters(), 1e-3)
loss_fn = torch.nn.CrossEntropyLoss()

def epoch():
    perm = torch.randperm(len(X))
    for i in range(0, len(X), 128):
        idx = perm[i:i + 128]
        opt.zero_grad()
        loss_fn(model(X[idx]), Y[idx]).backward()
        opt.step()

epoch()
t = time.time()
for _ in range(3):
    epoch()
print(f"epoch_s={(time.time() - t) / 3:.3f}")
