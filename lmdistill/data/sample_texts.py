"""Sentences to time models on when no task data is at hand (``bench`` / ``quantize`` without a
data directory, or ``--texts FILE``). Timing needs realistic lengths, not labels: these are
plain English sentences of 3 to ~45 tokens, written for lmdistill (no dataset's text)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError

BUILTIN = [
    "great .",
    "not worth the ticket .",
    "a warm , funny and surprisingly wise little film .",
    "the battery died after two days and support never answered my emails .",
    "i would happily watch it again tomorrow .",
    "the plot is thin , but the two leads carry every scene with real charm .",
    "slow , loud and far too long .",
    "the kettle boils quickly and the handle stays cool , which is all i wanted .",
    "it never decides whether it wants to be a comedy or a thriller , and it fails at both .",
    "a quiet triumph .",
    "the instructions were missing , so assembly took most of the afternoon .",
    "every performance feels lived in , and the ending earns its tears .",
    "meh .",
    "the story of a small town baker who discovers that her recipes can change the weather , "
    "told with more patience than most films allow .",
    "shipping was fast and the package arrived in perfect condition .",
    "the jokes land about half the time , which is better than i expected .",
    "an ambitious mess that collapses under the weight of its own ideas .",
    "sturdy , simple , and it fits in the cupboard .",
    "the second half drags badly .",
    "i bought this for my father and he has used it every single day since .",
    "gorgeous to look at and almost impossible to care about .",
    "the sound is clear at low volume but distorts as soon as you turn it up .",
    "one of the best books i have read this year , with characters that stay with you for weeks "
    "after the last page .",
    "the director trusts the audience , and the audience is rewarded .",
    "it broke .",
    "the screen is bright enough outdoors , though the colours look a little washed out .",
    "a by-the-numbers sequel that nobody asked for .",
    "the chapters on the early years are fascinating ; the rest reads like a list of dates .",
    "fun for the whole family .",
    "customer service replaced the faulty unit within a week , no questions asked .",
    "there is a good movie hidden somewhere inside this one , but you have to dig for it .",
    "the pan heats evenly and cleans up in seconds .",
    "stunning .",
    "after twenty minutes i stopped caring who the killer was .",
    "the dialogue sparkles , the pacing never lets up , and the final twist is both surprising "
    "and completely fair .",
    "too expensive for what it does .",
    "the lid does not seal properly , so the coffee goes cold within an hour .",
    "a thoughtful documentary about people who rarely get to tell their own stories .",
    "i laughed , i cried , i checked my watch .",
    "solid value .",
    "the cast is wasted on a script that seems to have been written over a weekend .",
    "lightweight , comfortable and the strap has not frayed after a year of daily use .",
    "the film looks cheap , but its heart is in the right place .",
    "the manual is written in a language that only resembles english .",
    "beautifully shot , wonderfully acted , and about twenty minutes too long .",
    "it does exactly what the box says .",
    "the author has clearly done her research , and she wears it lightly .",
    "a tedious exercise in style over substance .",
    "the blender is powerful but so loud that the neighbours complained .",
    "charming .",
    "this is the kind of movie that makes you want to call an old friend .",
    "the zipper broke on the first trip , and the seams started to come apart soon after .",
    "smart , tense and never predictable .",
    "the translation is clumsy in places , but the story survives it .",
    "i returned it the next day .",
    "the special effects are impressive , the characters are not .",
    "the knife holds its edge well and feels balanced in the hand .",
    "a rare comedy that is as clever as it is kind .",
    "disappointing .",
    "the setup takes five minutes and the app walks you through every step .",
    "by the end , the film has said everything it had to say twice .",
    "the chairs look great , but they wobble on any floor that is not perfectly flat .",
    "an unforgettable performance at the centre of a forgettable film .",
    "works as advertised .",
]


def read_texts(path: str | Path) -> list[tuple[str, str | None]]:
    """One text a line (a tab separates the two sentences of a pair); blank lines skipped."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"texts file {p} does not exist")
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            a, _, b = line.partition("\t")
            out.append((a.strip(), b.strip() or None))
    if not out:
        raise DataError(f"texts file {p} has no lines")
    return out


def timing_texts(task: str | None = None, split: str = "dev", data_dir: str | None = None,
                 texts_file: str | Path | None = None, need: int = 0
                 ) -> tuple[list[tuple[str, str | None]], str]:
    """Texts to time on and where they came from: ``texts_file`` if given, else the task
    split's sentences when its data directory is there, else the built-in sentences (said so
    in the returned description). Repeated to at least ``need`` texts."""
    if texts_file:
        texts, source = read_texts(texts_file), f"texts file {texts_file}"
    else:
        texts = None
        if task:
            from .tasks import get_task

            try:
                t = get_task(task, data_dir=data_dir)
                texts = [(e.text_a, e.text_b) for e in t.load(split)]
                source = f"task {t.name} ({split} split)"
            except DataError as e:
                if "data directory" not in str(e):
                    raise
                texts = None
        if texts is None:
            texts = [(s, None) for s in BUILTIN]
            source = (f"built-in sentences ({len(BUILTIN)}; no data directory"
                      f"{' for task ' + task if task else ''})")
    if need and len(texts) < need:
        texts = (texts * (need // len(texts) + 1))[:need]
    return texts, source
