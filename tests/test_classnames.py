"Class names CLIP cannot tell apart are refused, naming both."
import pytest

from clipexplore.methods.coop import CoOp
from clipexplore.methods.zeroshot import ZeroShotClassifier
from clipexplore.text import check_classnames


@pytest.mark.parametrize("names, pair", [(["star", " Star"], "'star' and ' Star'"), (["red  ring", "red ring"], "'red  ring' and 'red ring'"),
                                         (["ring", "ring"], "ring")])
def test_names_equal_to_the_tokenizer_are_refused(names, pair):
    with pytest.raises(ValueError, match=pair): check_classnames(names)


def test_methods_refuse_them_and_the_tokenizer_check_is_exact(clip):
    with pytest.raises(ValueError, match="tokenise identically"): ZeroShotClassifier(clip, ["star", "ring", " Star"])
    with pytest.raises(ValueError, match="tokenise identically"): CoOp(clip, ["star", "STAR"], n_ctx=4)
    with pytest.raises(ValueError, match="same token ids"): check_classnames(["star.", "star ."], clip.tokenizer)
    assert check_classnames(["star", "ring"], clip.tokenizer) == ["star", "ring"]
