"Bad input raises or warns with a message that says what to fix; nothing is unpickled."
import pytest
import torch
from safetensors.torch import save_file

from clipexplore.backbone import load_clip, read_state_dict
from clipexplore.methods.zeroshot import ZeroShotClassifier
from clipexplore.text import class_text_features
from clipexplore.toyworld import ToyWorld


def test_unknown_model_lists_close_matches():
    with pytest.raises(ValueError, match="Close matches.*ViT-B-32"): load_clip("ViT-B32")


def test_unknown_pretrained_tag_lists_tags():
    with pytest.raises(ValueError, match="tags:.*openai"): load_clip("ViT-B-32", pretrained="opena1")


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"): load_clip("toy", pretrained=tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="does not exist"): load_clip("ViT-B-32", pretrained=str(tmp_path / "nope.pt"))


def test_checkpoint_that_is_not_a_clip_state_dict(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"fc.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ValueError, match="not a state dict for this CLIP architecture"): load_clip("toy", pretrained=path)


class Payload:
    def __reduce__(self): return (print, ("unpickled!",))


def test_pickled_objects_are_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"weights": Payload()}, path)
    with pytest.raises(ValueError, match="weights-only"): read_state_dict(path)
    assert "unpickled!" not in capsys.readouterr().out


def test_weights_only_torch_checkpoint_loads(tmp_path, clip):
    path = tmp_path / "toy.pt"
    torch.save({"state_dict": clip.model.state_dict()}, path)
    again = load_clip("toy", pretrained=path, device="cpu")
    x = ToyWorld(2, seed=1)[0]["image"][None]
    with torch.no_grad(): assert torch.allclose(again.encode_image(x), clip.encode_image(x))


def test_class_names_longer_than_the_context_warn(clip):
    long = "extraordinarily " * 90 + "long name"
    with pytest.warns(UserWarning, match="exceed the 77-token context"): class_text_features(clip, ["star", long])


def test_empty_and_duplicate_class_lists(clip):
    with pytest.raises(ValueError, match="empty class list"): ZeroShotClassifier(clip, [])
    with pytest.raises(ValueError, match="duplicate class names"): ZeroShotClassifier(clip, ["star", "ring", "star"])
    with pytest.raises(ValueError, match="not the string"): ZeroShotClassifier(clip, "star")


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (2, 1, 64, 64), (3, 64, 64), (2, 64, 64, 3)])
def test_images_of_the_wrong_shape(clip, shape):
    with pytest.raises(ValueError, match=r"\[B, 3, 64, 64\]"): clip.encode_image(torch.zeros(shape))


def test_integer_images(clip):
    with pytest.raises(ValueError, match="float"): clip.encode_image(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))


def test_bad_world_arguments():
    with pytest.raises(ValueError, match="unknown domains"): ToyWorld(10, domains=["photo", "clipart"])
    with pytest.raises(IndexError): ToyWorld(10)[10]
