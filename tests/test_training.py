"""Optimisation really works with the real Caffe VGG-16 weights."""

import pytest
import torch

from fast_style.module import StyleTransferSystem

pytestmark = pytest.mark.slow


def test_loss_halves_when_overfitting_one_batch(style_path):
    torch.manual_seed(0)
    system = StyleTransferSystem(str(style_path), style_size=64, width=16, num_residual_blocks=2,
                                 lr=1e-3)
    photos = torch.rand(2, 3, 48, 48)
    optimizer = system.configure_optimizers()
    losses = []
    for _ in range(15):
        loss = system.compute_losses(photos)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_only_the_transform_net_learns(style_path):
    system = StyleTransferSystem(str(style_path), style_size=32, width=8, num_residual_blocks=1)
    trainable = {n.split(".")[0] for n, p in system.named_parameters() if p.requires_grad}
    assert trainable == {"transformer"}
    params = {id(p) for group in system.configure_optimizers().param_groups for p in group["params"]}
    assert params == {id(p) for p in system.transformer.parameters()}


@pytest.mark.parametrize("precision, options", [
    ("bf16-mixed", {"cpp.simdlen": 256}), ("bf16-true", {"cpp.simdlen": 256}),
    ("32-true", None), (None, None)])
def test_a_cpu_compiles_bf16_training_with_256_bit_vectors(style_path, monkeypatch, precision,
                                                            options):
    """The workaround for Inductor's NaN gradients in bf16 on AVX512-BF16/AMX CPUs (the test
    below shows them only on such a CPU): every stage gets the options, and only in bf16."""
    system = StyleTransferSystem(str(style_path), style_size=32, width=8, num_residual_blocks=1,
                                 compile=True)
    seen = []
    monkeypatch.setattr(torch.nn.Module, "compile",
                        lambda self, **kwargs: seen.append(kwargs.get("options")))
    system.compile_for_training(precision)
    assert seen == [options] * 3


def test_compiled_training_follows_eager_in_bf16(style_path):
    # model.compile=true gave NaN losses in bf16 on CPUs twice: once from one graph for the
    # whole width-32 network, and once from Inductor's 512-bit vector kernels on a CPU with
    # AVX512-BF16/AMX (this configuration, whose NaNs depend on the sizes and values: 128 px
    # batches of 4, the default network, content weight 2). The two must train alike.
    def losses(compile: bool) -> list[float]:
        torch.manual_seed(0)
        system = StyleTransferSystem(str(style_path), content_weight=2.0, compile=compile)
        if compile:
            system.compile_for_training("bf16-mixed")  # what on_fit_start does: the CPU's stages
            assert all(stage._compiled_call_impl is not None for stage in (
                system.transformer.encoder, system.transformer.residuals,
                system.transformer.decoder))
        optimizer = system.configure_optimizers()
        # channels_last, as the DataModule's batches reach the step
        photos = torch.rand(4, 3, 128, 128).contiguous(memory_format=torch.channels_last)
        curve = []
        for _ in range(3):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = system.training_losses(photos)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            curve.append(loss.item())
        return curve

    eager, compiled = losses(False), losses(True)
    assert compiled == pytest.approx(eager, rel=0.02), (eager, compiled)


def test_learning_rate_warms_up_then_stays_or_follows_a_cosine():
    from fast_style.module import lr_factor

    assert [lr_factor(s, 4, "none", 100) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert lr_factor(0, 0, "none", 100) == 1.0 and lr_factor(99, 0, "none", 100) == 1.0
    cosine = [lr_factor(s, 0, "cosine", 100) for s in (0, 50, 100, 150)]
    assert cosine == [1.0, pytest.approx(0.5), pytest.approx(0.0), pytest.approx(0.0)]
    assert lr_factor(10, 10, "cosine", 110) == 1.0  # the cosine starts after the warm-up
    linear = [lr_factor(s, 0, "linear", 100) for s in (0, 25, 50, 100, 150)]
    assert linear == [1.0, 0.75, 0.5, 0.0, 0.0]


def test_a_time_budget_ends_the_decay_when_it_runs_out_before_the_steps():
    from fast_style.module import lr_factor

    # Half the minutes spent at step 100 of 10,000: the time budget binds.
    assert lr_factor(100, 0, "linear", 10_000, time_done=0.5) == 0.5
    assert lr_factor(100, 0, "cosine", 10_000, time_done=1.0) == pytest.approx(0.0)
    assert lr_factor(100, 0, "linear", -1, time_done=0.25) == 0.75  # no step budget at all
    # The steps run out first: the time budget changes nothing (a generous safety limit).
    assert lr_factor(500, 0, "linear", 1000, time_done=0.3) == 0.5
    assert lr_factor(5, 10, "linear", 1000, time_done=0.9) == 0.6  # warm-up first, always
    assert lr_factor(100, 0, "none", 1000, time_done=0.9) == 1.0


def test_the_time_budget_is_read_from_lightnings_timer_resumed_time_included():
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import Timer

    from fast_style.module import budget_time_done

    assert budget_time_done(SimpleNamespace(callbacks=[])) == 0.0  # no time limit
    timer = Timer(duration="00:00:01:40")  # 100 s
    timer.load_state_dict({"time_elapsed": {"train": 25.0}})  # what a resumed run had spent
    assert budget_time_done(SimpleNamespace(callbacks=[timer])) == pytest.approx(0.25)
    timer.load_state_dict({"time_elapsed": {"train": 250.0}})
    assert budget_time_done(SimpleNamespace(callbacks=[timer])) == 1.0


@pytest.mark.parametrize("accumulate, world_size, mode", [(1, 1, "reduce-overhead"),
                                                          (2, 1, "default"), (1, 2, "default")])
def test_a_gpu_compiles_the_whole_step_with_cuda_graphs_where_they_are_safe(
        style_path, monkeypatch, accumulate, world_size, mode):
    """On a GPU, model.compile=true compiles compute_losses whole, replayed as CUDA graphs
    unless gradient accumulation or DDP would see their reused buffers (no GPU here: the device
    and trainer are stand-ins; benchmarks/gpu.sh runs the real thing)."""
    from types import SimpleNamespace

    system = StyleTransferSystem(str(style_path), style_size=32, width=8, num_residual_blocks=1,
                                 compile=True)
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, mode: compiled.append((fn, mode)) or fn)
    system._device = torch.device("cuda", 0)
    system._trainer = SimpleNamespace(accumulate_grad_batches=accumulate, world_size=world_size)
    system.compile_for_training()
    assert compiled == [(system.compute_losses, mode)]
    assert system.cuda_graphs == (mode == "reduce-overhead")
    assert system.transformer.encoder._compiled_call_impl is None  # not the CPU's route


@pytest.mark.parametrize("length", [{"max_steps": 7}, {"max_epochs": 1}])
def test_train_losses_reach_the_logger_every_n_steps_and_at_the_last(style_path, tmp_path,
                                                                      length):
    """The system logs only on the steps Lightning passes to the logger: every
    log_every_n_steps, and the last, where train.py's FinalMetrics stops the run (after the
    training step: by max_steps or, decided by a callback, by max_epochs). Each point holds its
    own step's values."""
    import csv

    import lightning as L
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader

    from fast_style.callbacks import FinalMetrics

    torch.manual_seed(0)
    system = StyleTransferSystem(str(style_path), style_size=32, width=8, num_residual_blocks=1)
    trainer = L.Trainer(logger=CSVLogger(tmp_path), enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=3, accelerator="cpu", **length)
    step_losses = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, system, *args):
            step_losses.append(float(system.step_losses["loss"]))

    trainer.callbacks += [Record(), FinalMetrics()]
    trainer.fit(system, DataLoader(list(torch.rand(14, 3, 32, 32)), batch_size=2))  # 7 steps
    [metrics] = tmp_path.glob("**/metrics.csv")
    logged = {int(row["step"]): float(row["train/loss"])
              for row in csv.DictReader(metrics.open()) if row.get("train/loss")}
    assert sorted(logged) == [2, 5, 6]
    assert all(logged[step] == pytest.approx(step_losses[step]) for step in logged)
    assert len(set(logged.values())) == 3


def test_cuda_graph_steps_mark_each_step_and_keep_copies(style_path, monkeypatch):
    """With CUDA graphs (a GPU's compiled step), each training step tells the graph trees that
    a new step begins, and what Lightning keeps are copies, not the replay's reused buffers. The
    branch runs here on a CPU with the eager losses standing in for the compiled ones."""
    system = StyleTransferSystem(str(style_path), style_size=32, width=8, num_residual_blocks=1)
    system.cuda_graphs = True
    marks, returned = [], []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))

    def replayed(photos, ids=None):
        returned.append(losses := system.compute_losses(photos, ids))
        return losses

    system.training_losses = replayed
    monkeypatch.setattr(StyleTransferSystem, "trainer", property(lambda self: None))
    loss = system.training_step(torch.rand(2, 3, 32, 32), 0)
    assert marks == [1]
    assert loss.data_ptr() != returned[0]["loss"].data_ptr()
    assert torch.equal(loss, returned[0]["loss"])
    assert all(system.step_losses[k].data_ptr() != v.data_ptr()
               for k, v in returned[0].items())
