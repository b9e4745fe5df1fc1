"""Writing poems with a trained model: batched, stateful, and held to the form by constrained decoding.

All `--n` poems are written together, one token per step, the LSTM state of each
carried from step to step (model.Stepper), so nothing is ever re-read. A regulated
form fixes the poem's layout in advance: for a five-character jueju, four lines of
five characters, `，` after the first and third, `。` after the second and fourth,
then END. Those tokens are forced (fed to the model, not sampled); at a character's
place only characters can be sampled (never punctuation, END or the unknown token).
So every poem has exactly the right line lengths, line count and punctuation, and
always ends. `--acrostic` forces each line's first character (藏头诗), `--prefix`
the first characters of the poem, `--start` the first character of each poem (the
characters given are used in turn). In free form the model chooses its own
punctuation and its end, with END forced at `--max-tokens`.

Sampling: the model's probabilities sharpened or flattened by `--temperature`, cut
to the `--top-k` likeliest tokens and to the smallest set holding `--top-p` of the
probability, then drawn with a generator seeded by `--seed`: the same model, flags
and seed give the same poems.
"""

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import runs
from common.errors import UserError
from projects.tang_poetry import PROJECT
from projects.tang_poetry.data import COMMA, END, FIRST_CHARACTER, FORMS, PAD, START, STOP, VOCABULARY_FILE, Vocabulary

PUNCTUATION = re.compile(r"[，。,.、；;：:！!？?\s]")


def check_args(args):
    """One line for each setting that cannot work, before any model is loaded."""
    if not args.temperature > 0:
        raise UserError(f"--temperature must be positive, got {args.temperature}")
    if not 0 < args.top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.top_k < 0:
        raise UserError(f"--top-k must not be negative (0: off), got {args.top_k}")
    if args.acrostic and args.prefix:
        raise UserError("--prefix and --acrostic both fix the first line's start; give one of them")
    if args.start and (args.acrostic or args.prefix):
        raise UserError(f"--{'acrostic' if args.acrostic else 'prefix'} fixes the poem's first character already; leave out --start")
    if args.form in FORMS:
        length, count = FORMS[args.form]
        if args.acrostic and len(strip(args.acrostic)) != count:
            raise UserError(f"--acrostic {args.acrostic} has {len(strip(args.acrostic))} characters; a {args.form} has {count} lines, one per character")
        if args.prefix:
            check_prefix(args.prefix, length, count, args.form)
    elif args.rhyme:
        raise UserError("--rhyme needs a regulated --form (5-jueju, 7-jueju, 5-lushi or 7-lushi)")
    if args.form not in FORMS and args.acrostic:
        raise UserError("--acrostic needs a regulated --form (5-jueju, 7-jueju, 5-lushi or 7-lushi): its line count is the acrostic's length")
    for name in ("acrostic", "prefix", "start"):
        if getattr(args, name) is not None and not strip(getattr(args, name)):
            raise UserError(f"--{name} holds no characters")


def strip(text):
    return PUNCTUATION.sub("", text or "")


def check_prefix(prefix, length, count, form):
    """A prefix fits a form when its lines (split at its own punctuation) are full lines but for the last, and not too many."""
    parts = [part for part in re.split(PUNCTUATION, prefix) if part]
    if any(len(part) > length for part in parts) or any(len(part) != length for part in parts[:-1]) or \
            len(strip(prefix)) >= length * count:
        raise UserError(f"--prefix {prefix} does not fit a {form} ({count} lines of {length} characters): "
                        f"its lines must have {length} characters, the last one at most {length}")


@dataclass
class Trained:
    model: object
    vocabulary: Vocabulary
    path: Path
    settings: dict


def load(model_flag=None):
    """The trained model a --model flag names (default: the newest), with its vocabulary and settings."""
    path = runs.model_path(PROJECT, model_flag)
    model = runs.load_model(path, PROJECT)
    vocabulary_file = path.parent / VOCABULARY_FILE
    if not vocabulary_file.is_file():
        raise UserError(f"{vocabulary_file} is missing: the model cannot be read without the vocabulary saved beside it")
    return Trained(model, Vocabulary.load(vocabulary_file), path, runs.run_config(path))


def known_ids(text, vocabulary, script, flag, likelihood):
    """The ids of the characters of `text`; a character of the other script is converted first, an unknown one refused.

    Where one simplified character stands for several traditional ones (发: 發 or 髮), the model's likelier one wins
    (`likelihood`: its probabilities of a poem's first token), and a note says so.
    """
    ids = []
    for character in strip(text):
        if character not in vocabulary.ids:
            known = [c for c in conversions(character, script) if c in vocabulary.ids]
            if not known:
                raise UserError(f"{flag}: the model does not know the character {character} "
                                f"(it was trained on {script} characters; try another one)")
            chosen = max(known, key=lambda c: likelihood[vocabulary.ids[c]])
            among = f" (the likelier for the model of {', '.join(known)})" if len(known) > 1 else ""
            print(f"note: {flag} {character} read as {chosen}{among}", file=sys.stderr)
            character = chosen
        ids.append(vocabulary.ids[character])
    return ids


def conversions(character, script):
    """The characters of `script` that OpenCC's character table gives for `character` (empty when it has none)."""
    import opencc

    table = Path(opencc.__file__).parent / "dictionary" / ("STCharacters.txt" if script == "traditional" else "TSCharacters.txt")
    for line in table.read_text(encoding="utf-8").splitlines():
        source, _, targets = line.partition("\t")
        if source == character:
            return targets.split()
    return []


def layout(form, start=None, acrostic=None, prefix=None):
    """Per token position, the forced token id or -1 (sample a character there) for one poem; free form: the forced opening only."""
    if form not in FORMS:
        return list(prefix or []) or ([start] if start is not None else [])
    length, count = FORMS[form]
    plan = []
    for line in range(count):
        plan += [-1] * length + [COMMA if line % 2 == 0 else STOP]
    plan.append(END)
    character_places = [i for i, token in enumerate(plan) if token == -1]
    if start is not None:
        plan[0] = start
    for line, token in enumerate(acrostic or []):
        plan[line * (length + 1)] = token
    for place, token in zip(character_places, prefix or []):
        plan[place] = token
    return plan


def sample(p, allowed, temperature, top_k, top_p, rng):
    """One token per row of `p` among the `allowed` ones, after temperature, top-k and top-p."""
    q = np.where(allowed, np.maximum(p, 1e-30), 0.0)
    if temperature != 1:
        q = np.where(allowed, np.exp(np.log(np.maximum(q, 1e-300)) / temperature), 0.0)
    q /= q.sum(axis=1, keepdims=True)
    if top_k and top_k < q.shape[1]:
        threshold = np.partition(q, q.shape[1] - top_k, axis=1)[:, q.shape[1] - top_k]
        q = np.where(q >= threshold[:, None], q, 0.0)
        q /= q.sum(axis=1, keepdims=True)
    if top_p < 1:
        order = np.argsort(-q, axis=1)
        ranked = np.take_along_axis(q, order, axis=1)
        keep = (np.cumsum(ranked, axis=1) - ranked) < top_p  # the likeliest tokens until top_p of the mass is held
        kept = np.zeros_like(q)
        np.put_along_axis(kept, order, np.where(keep, ranked, 0.0), axis=1)
        q = kept / kept.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(q, axis=1)
    drawn = rng.random(len(q))[:, None] * cumulative[:, -1:]
    return np.minimum((cumulative < drawn).sum(axis=1), q.shape[1] - 1)


def write(stepper, vocabulary_size, count, form="5-jueju", starts=(), acrostic=None, prefix=None, temperature=1.0, top_k=0,
          top_p=1.0, seed=0, max_tokens=120, rhyme_groups=None):
    """`count` poems as lists of token ids (START and END left out), decoded together.

    `rhyme_groups` (a regulated form only): each token's rhyme group number (-1: none); given, the last character of
    every even line is drawn from the group of the first even line's last character.
    """
    rng = np.random.default_rng(seed)
    plans = [layout(form, starts[i % len(starts)] if starts else None, acrostic, prefix) for i in range(count)]
    regulated = form in FORMS
    steps = len(plans[0]) if regulated else max_tokens
    characters = np.zeros(vocabulary_size, bool)
    characters[FIRST_CHARACTER:] = True
    stepper.reset(count)
    tokens = np.full(count, START)
    written = np.zeros((count, steps), np.int64)
    finished = np.zeros(count, bool)
    rhyme_places, chosen = set(), np.full(count, -1)
    if regulated and rhyme_groups is not None:
        length, lines = FORMS[form]
        rhyme_places = {line * (length + 1) + length - 1 for line in range(1, lines, 2)}
    for position in range(steps):
        p = stepper.step(tokens)
        if regulated:
            forced = np.array([plan[position] for plan in plans])
            allowed = np.broadcast_to(characters, p.shape)
            if position in rhyme_places:
                free = chosen < 0
                allowed = characters & np.where(free[:, None], rhyme_groups >= 0, rhyme_groups == chosen[:, None])
        else:
            forced = np.array([plan[position] if position < len(plan) else -1 for plan in plans])
            if position == steps - 1:
                forced = np.where(forced < 0, END, forced)
            after_line = np.isin(tokens, (START, COMMA, STOP))
            allowed = np.tile(characters, (count, 1))
            allowed[:, [COMMA, STOP]] = ~after_line[:, None]  # no empty lines
            allowed[:, END] = tokens == STOP  # a free poem ends after a full stop
        drawn = sample(p, allowed, temperature, top_k, top_p, rng)
        tokens = np.where(forced >= 0, forced, drawn)
        tokens = np.where(finished, PAD, tokens)
        if position in rhyme_places:
            chosen = np.where(chosen < 0, rhyme_groups[tokens], chosen)
        written[:, position] = tokens
        finished |= tokens == END
        if finished.all():
            break
    return [[int(t) for t in row if t not in (PAD, END)] for row in written]


def rhyme_groups(vocabulary):
    """Each token's rhyme group as a number (rhyme.GROUPS' order), -1 for the special tokens and characters without one."""
    from projects.tang_poetry import rhyme

    numbers = {name: number for number, name in enumerate(rhyme.GROUPS)}
    groups = [rhyme.group(token) if i >= FIRST_CHARACTER else None for i, token in enumerate(vocabulary.tokens)]
    return np.array([numbers.get(g, -1) for g in groups])


def as_text(ids, vocabulary):
    """A poem's text, one couplet a line (a free poem cut off by --max-tokens gets its closing 。)."""
    text = vocabulary.decode(ids)
    if text and text[-1] not in "，。":
        text += "。"
    return re.sub("(?<=。)(?=.)", "\n", text)


def generate(args):
    """Write --n poems with a trained model, print them (a blank line between) and save them in its run folder."""
    check_args(args)
    trained = load(args.model)
    started = time.time()
    poems = write_poems(trained, args)
    seconds = time.time() - started
    text = "\n\n".join(poems) + "\n"
    print(text, end="")
    samples = trained.path.parent / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = next(samples / f"poems-{stamp}{suffix}.txt" for suffix in ["", *(f"-{i}" for i in range(2, 10000))]
               if not (samples / f"poems-{stamp}{suffix}.txt").exists())
    with runs.atomic_path(out) as temporary:
        temporary.write_text(text, encoding="utf-8")
    print(f"\n{len(poems)} poem(s) in {seconds:.2f} s, saved in {out}")
    return 0


def write_poems(trained, args):
    """The texts of the --n poems the generate flags in `args` (checked by `check_args`) ask of a loaded model."""
    from projects.tang_poetry.model import Stepper

    vocabulary, script = trained.vocabulary, trained.settings.get("script", "traditional")
    stepper = Stepper(trained.model)
    stepper.reset(1)
    likelihood = stepper.step(np.array([START]))[0]
    known = lambda text, flag: known_ids(text, vocabulary, script, flag, likelihood)
    starts = known(args.start, "--start") if args.start else ()
    acrostic = known(args.acrostic, "--acrostic") if args.acrostic else None
    prefix = None
    if args.prefix:
        if args.form in FORMS:
            prefix = known(args.prefix, "--prefix")
        else:  # free form keeps the prefix's own punctuation
            prefix = [vocabulary.ids[c] if c in "，。" else known(c, "--prefix")[0]
                      for c in re.sub("[,、；;：:]", "，", re.sub("[.！!？?]", "。", args.prefix)) if not c.isspace()]
    groups = rhyme_groups(vocabulary) if args.rhyme else None
    poems = write(stepper, len(vocabulary), args.n, args.form, starts, acrostic, prefix, args.temperature,
                  args.top_k, args.top_p, args.seed, args.max_tokens, groups)
    return [as_text(poem, vocabulary) for poem in poems]
