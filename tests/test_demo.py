"""The web demo, in this process: each page's answer on tiny trained runs, the upload checks, the server's rules.

The pages are called as the server calls them (`server.answer`, the JSON the page
shows) and compared with what the projects' own commands and functions give. The
browser itself is tested by tests/browser/browser_demo.py (`make test-browser`).
What the pages compute is the projects' own code, tested under both backends in their
files; what the demo adds (forms, files, JSON, the server) cannot differ between
backends, so this file runs under TensorFlow only.
"""

import base64
import io
import json
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image, ImageDraw

from common import runs
from helpers import run_command
from demo import pages, server, uploads

pytestmark = pytest.mark.backend_independent

TINY_RUNS = {
    "mnist": ["projects.mnist_cnn", "train", "--tiny", "--val-split", "0.0625", "--batch-size", "32", "--no-augment", "--epochs", "1"],
    "imdb": ["projects.imdb_sentiment", "train", "--kind", "bow", "--tiny"],
    "dcgan": ["projects.dcgan", "train", "--tiny", "--conditional", "--image-size=28", "--mode=grey", "--width=8",
              "--discriminator-width=8", "--batch-size=32", "--epochs=1"],
    "style": ["projects.style_transfer", "train", "--tiny", "--backbone", "vgg16", "--backbone-weights", "random",
              "--content-layers", "block2_conv2", "--style-layers", "block1_conv2,block2_conv2", "--filters", "4",
              "--residual-blocks", "1", "--epochs", "1"],
    "poetry": ["projects.tang_poetry", "train", "--tiny", "--epochs", "1"],
    "flappy": ["projects.flappy_dqn", "train", "--env", "cartpole", "--epochs", "1"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{page key: run folder} of one tiny run per page that trains in seconds; word2vec's vectors written directly."""
    folder = tmp_path_factory.mktemp("demo")
    found = {}
    for key, (module, *args) in TINY_RUNS.items():
        result = run_command(module, *args, "--out", folder / key)
        assert result.returncode == 0, result.stderr[-3000:]
        found[key] = folder / key
    from projects.word2vec import vectors

    words = ["good", "great", "bad", "awful", "film"]
    matrix = np.array([[1, 0.1, 0], [0.9, 0.3, 0.1], [-1, 0.2, 0], [-0.9, 0.1, 0.1], [0.1, 0, 1]], np.float32)
    (folder / "word2vec").mkdir()
    vectors.export(vectors.keyed_vectors(words, matrix), folder / "word2vec")
    found["word2vec"] = folder / "word2vec" / "vectors.bin"
    return found


@pytest.fixture(scope="module", autouse=True)
def commands_run_clean_after():
    """The pages read the projects' command-line flags from their `__main__` modules; forgotten afterwards, so that
    the tests that run those commands later in this process (runpy) start them as a user does."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("projects.") and name.endswith(".__main__"):
            del sys.modules[name]


@pytest.fixture(scope="module")
def tabs(trained):
    return {tab.page.key: tab for tab in server.find_models({key: [str(path)] for key, path in trained.items()})}


def png(picture):
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def upload(raw, name="picture.png"):
    return {"name": name, "data": base64.b64encode(raw).decode("ascii")}


def ask(tab, form=None, raw=None, name="picture.png"):
    """What the page shows for this form: server.answer's JSON, as the browser gets it."""
    return json.loads(json.dumps(server.answer(tab, {"form": form or {}, "upload": raw and upload(raw, name)})))


def picture_of(data_url):
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


def a_digit():
    picture = Image.new("L", (100, 100), 255)
    ImageDraw.Draw(picture).line([(50, 12), (50, 88)], fill=0, width=12)
    return picture


# --- each page on its tiny run ----------------------------------------------------------------


def test_mnist_shows_the_commands_prediction_the_ten_probabilities_and_the_picture_the_model_saw(tabs, trained, tmp_path):
    digit = tmp_path / "digit.png"
    a_digit().save(digit)
    shown = ask(tabs["mnist"], raw=digit.read_bytes())
    _, label, probability = run_command("projects.mnist_cnn", "predict", "--model", trained["mnist"], digit).stdout.split("\t")
    assert shown["lines"] == [f"prediction: {label} ({float(probability):.1%})"]
    assert [name for name, _ in shown["bars"]] == [str(d) for d in range(10)] and np.isclose(sum(p for _, p in shown["bars"]), 1, atol=1e-4)
    assert picture_of(shown["pictures"][0][1]).size == (112, 112)


def test_imdb_labels_a_review_with_each_model_as_the_predict_command_does(tabs, trained):
    review = "a wonderful film with great actors"
    shown = ask(tabs["imdb"], {"review": review})
    label, confidence, _ = run_command("projects.imdb_sentiment", "predict", "--model", trained["imdb"], review).stdout.split("\t")
    assert shown["lines"] == [f"bow: {label}, {float(confidence):.1%}"]
    assert ask(tabs["imdb"], {"review": "  ...  "}) == {"error": "the review holds no words; type one"}


def test_dcgan_draws_the_grid_of_the_class_asked_for_with_the_seed(tabs, trained):
    from projects.dcgan.generate import draw, load_generator

    shown = ask(tabs["dcgan"], {"label": "1", "count": "6", "seed": "3"})
    assert shown["lines"] == ["6 images of 28x28, seed 3, class 1"]
    expected = pages.images.grid(draw(load_generator(trained["dcgan"])[0], 6, 3, 1), columns=6, scale=3)
    assert np.array_equal(np.asarray(picture_of(shown["pictures"][0][1]).convert("RGB")), np.asarray(expected))
    assert ask(tabs["dcgan"], {"label": "2", "count": "6", "seed": "3"}) == {"error": "label: give a number from 0 to 1, got 2"}


def test_style_shows_the_photo_and_what_the_network_paints_with_its_colours_kept_when_asked(tabs, trained):
    from projects.style_transfer import data
    from projects.style_transfer.model import load_network
    from projects.style_transfer.stylize import paint

    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8))
    shown = ask(tabs["style"], {"max_size": "512", "preserve_color": True}, png(photo))
    assert [caption for caption, _ in shown["pictures"]] == ["photo", "stylized"]
    expected = paint(load_network(trained["style"] / "model.keras"), [np.asarray(photo, np.float32)], True)[0]
    assert np.array_equal(np.asarray(picture_of(shown["pictures"][1][1])), np.asarray(data.to_image(expected)))


def test_poetry_writes_the_poems_the_generate_command_prints(tabs, trained):
    printed = run_command("projects.tang_poetry", "generate", "--model", trained["poetry"], "--n", "2", "--seed", "4").stdout
    shown = ask(tabs["poetry"], {"form": "5-jueju", "temperature": "0.8", "n": "2", "seed": "4", "acrostic": "", "prefix": ""})
    assert "\n".join(shown["lines"]) == printed.split("\n\n2 poem(s)")[0].strip()
    assert ask(tabs["poetry"], {"form": "5-jueju", "temperature": "0", "n": "2", "seed": "0"}) == \
        {"error": "--temperature must be positive, got 0.0"}


def test_the_game_page_shows_the_score_and_a_video_of_the_game(tabs, trained, tmp_path):
    printed = run_command("projects.flappy_dqn", "play", "--model", trained["flappy"], "--out", tmp_path / "game.gif",
                          "--episode", "1", "--seconds", "2").stdout
    shown = ask(tabs["flappy"], {"episode": "1", "seconds": "2"})
    assert shown["lines"][0].split(" on ")[0] == printed.split(" in ")[0]
    video = picture_of(shown["pictures"][0][1])
    assert video.format == "GIF" and video.n_frames > 1


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A captcha reader and an AnimeGAN generator as their projects build them, untrained, each saved in a run folder
    (their tiny runs take half a minute each): what their pages do with a model."""
    from types import SimpleNamespace

    from projects.animegan.model import build_generator
    from projects.captcha.model import build_model

    folder = tmp_path_factory.mktemp("built")
    models = {"captcha": build_model(SimpleNamespace(rnn_units=8, dropout=0.0), (16, 43, 1), "1W"),
              "animegan": build_generator(residual_blocks=1)}
    for project, model in models.items():
        (folder / project).mkdir()
        runs.save_model(model, folder / project / "model.keras", project)
    return {tab.page.key: tab for tab in server.find_models({key: [str(folder / key)] for key in models})}


def test_captcha_reads_an_upload_or_a_generated_captcha_as_the_project_reads_it(built):
    from projects.captcha import data
    from projects.captcha.predict import character_confidences, read
    from projects.captcha.train import held_out_again

    def expected(x):
        texts, confidence = read(inference, x, alphabet)
        each = character_confidences(inference, x)[0]
        assert len(each) == len(texts[0])
        shown = ", ".join(f"{character} {sure:.0%}" for character, sure in zip(texts[0], each)) or "none read"
        return [f"reading: {texts[0]!r}, confidence {confidence[0]:.1%}", f"each character: {shown}"]

    inference, alphabet, size = pages.captcha_reader(built["captcha"].paths[0])
    x, truth, _ = held_out_again(built["captcha"].paths[0], alphabet, size, count=1, seed=3)
    assert ask(built["captcha"], {"seed": "3"})["lines"] == [*expected(x), f"generated captcha (seed 3) reads {truth[0]!r}"]
    captcha = Image.fromarray(np.random.default_rng(1).integers(0, 256, (60, 160), dtype=np.uint8))
    prepared = data.prepare(captcha, size)
    shown = ask(built["captcha"], raw=png(captcha))
    assert shown["lines"] == expected(prepared[None])
    seen = np.asarray(picture_of(shown["pictures"][0][1]))  # the model's input, three times as large
    assert np.array_equal(seen, np.repeat(np.repeat(prepared[..., 0], 3, axis=0), 3, axis=1))


def test_animegan_shows_the_photo_and_its_conversion_side_by_side(built):
    photo = Image.fromarray(np.random.default_rng(2).integers(0, 256, (30, 50, 3), dtype=np.uint8))
    shown = ask(built["animegan"], {"max_side": "40"}, png(photo))
    assert shown["lines"] == ["40x24 pixels", "scaled down from 50x30"]
    assert [caption for caption, _ in shown["pictures"]] == ["photo", "anime"]
    shrunk = np.asarray(picture_of(shown["pictures"][0][1]))
    converted = pages.anime_converter(built["animegan"].paths[0])(shrunk)
    assert np.array_equal(np.asarray(picture_of(shown["pictures"][1][1])), converted)


def test_word2vec_lists_neighbours_and_answers_analogies(tabs):
    shown = ask(tabs["word2vec"], {"word": "Good", "a": "good", "b": "bad", "c": "great", "top": "2"})
    assert shown["lines"][0] == "nearest to good:" and shown["lines"][1].split()[0] == "great"
    assert shown["lines"][3] == "good : bad :: great : ?" and shown["lines"][4].split()[0] == "awful"
    assert ask(tabs["word2vec"], {"word": "nosuchword", "top": "2"}) == {"error": "not in the vocabulary: nosuchword"}


# --- uploads --------------------------------------------------------------------------------


def test_an_upload_that_is_not_a_picture_gets_one_line_naming_the_file_as_the_user_knows_it(tabs):
    shown = ask(tabs["mnist"], raw=b"just some notes", name="../../notes.txt")
    assert shown["error"].startswith("notes.txt: not a readable image") and "/tmp" not in shown["error"], shown
    assert ask(tabs["mnist"]) == {"error": "choose a picture first"}


def test_uploads_over_20_mb_or_4096_pixels_a_side_are_refused_and_the_temporary_folder_is_removed(monkeypatch):
    with pytest.raises(pages.UserError, match=r"^big\.png: 20\.0 MB; pictures up to 20 MB are accepted$"):
        with uploads.saved_upload(upload(b"\0" * (uploads.MAX_BYTES + 1), "big.png")):
            pass
    wide = png(Image.new("L", (uploads.MAX_SIDE + 1, 2)))
    with pytest.raises(pages.UserError, match="^wide.png: 4097x2 pixels; pictures up to 4,096 pixels on a side are accepted$"):
        with uploads.saved_upload(upload(wide, "wide.png")):
            pass
    with uploads.saved_upload(upload(png(Image.new("L", (uploads.MAX_SIDE, 2))))) as path:
        assert path.name == "upload" and path.is_file()
    assert not path.parent.exists()
    with pytest.raises(pages.UserError, match="arrived damaged"):
        with uploads.saved_upload({"name": "x.png", "data": "not base64!"}):
            pass


# --- pages without a run, the command line, the server --------------------------------------


def test_a_page_without_a_trained_run_says_which_make_target_trains_one():
    tabs = server.find_models({})  # the tests' RUNS_DIR is empty
    assert not any(tab.ready for tab in tabs)
    page = server.render(tabs)
    assert "No trained MNIST model yet: make train-mnist trains one." in page
    assert page.count('class="missing"') == len(pages.PAGES) and "<form" not in page


def test_a_run_named_on_the_command_line_that_cannot_be_used_is_one_error_line(tmp_path, capsys):
    from demo.__main__ import main

    for flag, message in ((f"mnist={tmp_path}", f"error: {tmp_path}/model.keras does not exist"),
                          ("mnistx=runs", "error: --run mnistx=runs: no page 'mnistx'; the pages are mnist, captcha"),
                          ("mnist", "error: --run mnist: write PAGE=RUN")):
        assert main(["--run", flag]) == 2
        error = capsys.readouterr().err
        assert error.startswith(message) and error.count("\n") == 1, error


@pytest.fixture(scope="module")
def running(tabs):
    """The demo's server on a free port of 127.0.0.1, in a thread."""
    demo = server.DemoServer(("127.0.0.1", 0), list(tabs.values()))
    thread = threading.Thread(target=demo.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{demo.server_address[1]}"
    demo.shutdown()
    demo.server_close()


def fetch(url, body=None, content_type="application/json", headers=None):
    request = urllib.request.Request(url, body, {"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_the_server_serves_the_page_with_nothing_from_elsewhere_and_answers_forms_in_json(running):
    status, headers, body = fetch(f"{running}/")
    assert status == 200 and "default-src 'none'" in headers["Content-Security-Policy"]
    assert b"https:" not in body and b"http:" not in body and b'src="/static/app.js"' in body
    for name in ("app.js", "style.css"):
        status, _, script = fetch(f"{running}/static/{name}")
        assert status == 200 and b"http" not in script
    assert fetch(f"{running}/static/../server.py")[0] == 404
    form = json.dumps({"form": {"word": "film", "top": "1"}}).encode()
    status, _, answer = fetch(f"{running}/run/word2vec", form)
    assert status == 200 and json.loads(answer)["lines"][0] == "nearest to film:"
    assert fetch(f"{running}/run/word2vec", form, "text/plain")[0] == 415  # what a form on another site could send
    assert fetch(f"{running}/run/nosuchpage", form)[0] == 404
    status, _, answer = fetch(f"{running}/run/mnist", b"{}", headers={"Content-Length": str(server.MAX_REQUEST_BYTES + 1)})
    assert status == 413 and json.loads(answer)["error"].startswith("the upload is over 20 MB")


def test_the_server_listens_on_127_0_0_1_unless_told_otherwise():
    from demo.__main__ import main

    seen = {}

    def keep(address, tabs):
        seen["address"] = address
        raise OSError(98, "stopped here")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(server, "DemoServer", keep)
        assert main([]) == 2
    assert seen["address"] == ("127.0.0.1", 7860)
