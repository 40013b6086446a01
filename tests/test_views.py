"""Training views: what ViewedDataset adds, neighbour tables, shifted audio windows."""

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from datamodules import VGGSound
from datamodules.batch import collate
from datamodules.synthetic import SyntheticScenes
from datamodules.views import NeighbourTables, ViewedDataset, ViewSpec
from sslbench.audio import get_preset


def synthetic(n=6):
    data = SyntheticScenes("train", n)
    data.configure(image_size=32, audio=get_preset("quick"), train=True)
    return data


def test_views_are_added_under_their_names_and_collated():
    data = synthetic()
    tables = NeighbourTables(data.sample_ids, torch.tensor([[1, 2]] * 6), torch.tensor([[3, 4]] * 6), "test")
    spec = ViewSpec(second_image=True, strong_image=True, audio_shift_seconds=0.5, conceptual=True)
    viewed = ViewedDataset(data, spec, tables)
    sample = viewed[0]
    assert set(sample["views"]) == {"image_2", "image_aug", "waveform_aug", "image_conc", "waveform_conc"}
    assert sample["views"]["image_2"].shape == sample["image"].shape
    neighbours = {tuple(data[j]["image"].abs().sum((1, 2)).round(decimals=2).tolist()) for j in (1, 2)}
    assert tuple(sample["views"]["image_conc"].abs().sum((1, 2)).round(decimals=2).tolist()) in neighbours  # flips keep the sums
    batch = collate([viewed[i] for i in range(3)])
    assert batch.views["waveform_aug"].shape == batch.waveform.shape
    assert batch.views["image_aug"].shape == batch.image.shape
    assert viewed.name == data.name and len(viewed) == 6


def test_conceptual_views_need_tables_and_tables_must_cover_the_training_list(tmp_path):
    data = synthetic()
    with pytest.raises(ValueError, match="sslbench knn"):
        ViewedDataset(data, ViewSpec(conceptual=True))
    partial = NeighbourTables(data.sample_ids[:4], torch.zeros(4, 2, dtype=torch.long), torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="lack 2 of the 6"):
        ViewedDataset(data, ViewSpec(conceptual=True), partial)


def test_tables_round_trip_and_reindex_to_the_dataset_order(tmp_path):
    data = synthetic(4)
    ids = list(reversed(data.sample_ids)) + ["elsewhere"]  # another order and one id the set lacks
    image = torch.tensor([[1, 4], [0, 2], [3, 1], [2, 0], [0, 1]])
    tables = NeighbourTables(ids, image, image.flip(1), "file")
    tables.save(tmp_path / "new" / "nn.npz")  # the folder is made
    tables = NeighbourTables.load(tmp_path / "new" / "nn.npz")
    tables.save(tmp_path / "nn.npz")
    loaded = NeighbourTables.load(tmp_path / "nn.npz").aligned_to(data)
    # dataset sample 0 is row 3 of the file, whose neighbours are file rows 2 and 0 -> dataset 1 and 3
    assert loaded.image[0].tolist() == [1, 3]
    assert loaded.image[3].tolist() == [2, -1]  # "elsewhere" is dropped as -1
    with pytest.raises(FileNotFoundError, match="sslbench knn"):
        NeighbourTables.load(tmp_path / "missing.npz")


def test_a_folder_reader_cuts_the_shifted_window_from_the_whole_file(tmp_path):
    (tmp_path / "frames").mkdir()
    (tmp_path / "audio").mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "frames" / "a.jpg")
    rate = 16000
    ramp = np.linspace(-1, 1, 4 * rate, dtype=np.float32)  # the value tells the position
    sf.write(tmp_path / "audio" / "a.wav", ramp, rate)
    data = VGGSound(str(tmp_path))
    data.configure(image_size=32, audio=get_preset("quick"), train=True)
    plain = data[0]["waveform"]
    shifted = data.shifted_waveform(0, plain, 0.5)
    assert plain[0].item() == pytest.approx(ramp[int(1.5 * rate)], abs=1e-4)  # centred 1 s of 4 s
    assert shifted[0].item() == pytest.approx(ramp[int(2.0 * rate)], abs=1e-4)
    assert data.shifted_waveform(0, plain, 10.0)[-1].item() == pytest.approx(ramp[-1], abs=1e-4)  # kept inside the clip


def grey_frame_centres(form: str, draws: int = 400) -> torch.Tensor:
    """The centre pixel of ``draws`` strong views of a uniform mid-grey frame, back in [0, 1]."""
    from datamodules.transforms import denormalize
    from datamodules.views import strong_augmentation

    torch.manual_seed(0)
    strong = strong_augmentation(32, form)
    grey = torch.full((3, 40, 60), 128, dtype=torch.uint8)
    if form == "code":  # the full decoded frame
        views = [strong(grey) for _ in range(draws)]
    else:  # an already-cropped [0, 1] training view
        views = [strong(grey[:, :32, :32].float() / 255) for _ in range(draws)]
    return torch.stack([denormalize(v)[:, 16, 16] if form == "code" else v[:, 16, 16] for v in views]).mean(1)


def test_strong_view_jitters_brightness_as_torchvision_reads_the_code_call():
    """ssl_kccv ``dataloader_vggss.py`` calls ``ColorJitter(brightness=(0, 0.4), ...)`` with p 4/5:
    torchvision reads (0, 0.4) as the factor's range, so a jittered grey 0.5 becomes at most 0.2
    (contrast, saturation and hue leave a uniform grey alone). About 4 in 5 draws are that dark.
    The intended-looking form (factor 1 +- 0.4) never goes below 0.3."""
    code = grey_frame_centres("code")
    dark = float((code < 0.21).float().mean())
    assert 0.72 < dark < 0.88  # p = 0.8 over 400 draws
    intended = grey_frame_centres("intended")
    assert float(intended.min()) > 0.29 and float(intended.max()) < 0.71


def test_strong_view_in_the_code_form_starts_from_the_full_frame(tmp_path):
    """The rotation, jitter and blur run on the decoded frame before Resize(1.1 x) and the crop:
    ViewedDataset takes the reader's ``raw_frame`` (a wide 48 x 96 JPEG here), and the view still
    comes out at the training size."""
    (tmp_path / "frames").mkdir()
    (tmp_path / "audio").mkdir()
    Image.fromarray(np.full((48, 96, 3), 200, np.uint8)).save(tmp_path / "frames" / "a.jpg")
    sf.write(tmp_path / "audio" / "a.wav", np.zeros(16000, np.float32), 16000)
    data = VGGSound(str(tmp_path))
    data.configure(image_size=32, audio=get_preset("quick"), train=True)
    assert data.raw_frame(0).size == (96, 48)
    viewed = ViewedDataset(data, ViewSpec(strong_image=True, strong_form="code"))
    calls = []
    data.raw_frame = lambda index: calls.append(index) or Image.new("RGB", (96, 48), (200, 200, 200))
    assert viewed[0]["views"]["image_aug"].shape == (3, 32, 32) and calls == [0]
