"""Disagreements with the networks' own JavaScript libraries, on one corpus.

    python bench/social_conformance.py [SIZE]

Runs twitter-text 3.1.0 and @atproto/api's RichText (tests/js, installed
with ``npm ci --ignore-scripts``) over the seeded corpus of
tests/social_corpus.py, then counts the texts where dispatch disagrees and,
as the baseline measured in the same run, where the ``twitter-text-parser``
package (the Python port dispatch used before) disagrees on X, and where
faceting only the article link and hashtags (dispatch before) misses
Bluesky facets. Also times both X counters.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import twitter_text
from tests.social_corpus import SIZE, corpus, node_missing_reason, reference

from dispatch.social.bsky_facets import detect_facets
from dispatch.social.count import bluesky_length, x_length, x_valid


def main() -> int:
    missing = node_missing_reason()
    if missing:
        print(missing, file=sys.stderr)
        return 1
    texts = corpus(int(sys.argv[1]) if len(sys.argv) > 1 else SIZE)
    answers = reference(texts)
    started = time.perf_counter()
    ours_x = [(x_length(t), x_valid(t)) for t in texts]
    ours_time = time.perf_counter() - started
    started = time.perf_counter()
    parsed = [twitter_text.parse_tweet(t) for t in texts]
    base_time = time.perf_counter() - started
    theirs_x = [(a["x"]["weightedLength"], a["x"]["valid"]) for a in answers]
    base_x = [(p.weightedLength, p.valid) for p in parsed]
    ours_facets = [[f.as_bluesky() for f in detect_facets(t)] for t in texts]
    theirs_facets = [[{"index": f["index"], "features": f["features"]}
                      for f in a["bluesky"]["facets"]] for a in answers]

    def differ(mine: list[object], theirs: list[object]) -> int:
        return sum(m != t for m, t in zip(mine, theirs, strict=True))

    print(f"corpus: {len(texts)} texts (seeded)")
    print(f"X length:  dispatch {differ([o[0] for o in ours_x], [t[0] for t in theirs_x])}"
          f" disagreements; baseline twitter-text-parser "
          f"{differ([b[0] for b in base_x], [t[0] for t in theirs_x])}")
    print(f"X valid:   dispatch {differ([o[1] for o in ours_x], [t[1] for t in theirs_x])}"
          f"; baseline {differ([b[1] for b in base_x], [t[1] for t in theirs_x])}")
    print(f"Bluesky length: dispatch "
          f"{differ([bluesky_length(t) for t in texts], [a['bluesky']['graphemeLength'] for a in answers])}")  # noqa: E501
    print(f"Bluesky facets: dispatch {differ(ours_facets, theirs_facets)}; baseline "
          f"(no facets found in the text) {sum(bool(f) for f in theirs_facets)}")
    print(f"X counting time: dispatch {1000 * ours_time / len(texts):.2f} ms/text; "
          f"baseline twitter-text-parser {1000 * base_time / len(texts):.2f} ms/text")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
