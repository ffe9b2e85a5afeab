#!/usr/bin/env python3
"""bench_scan: extract and store a generated corpus, the way ``citewatch scan`` does.

Usage:  .venv/bin/python benchmarks/bench_scan.py [--profiles 5000] [--citations 100000]
                                                   [--markdown-share 0.5] [--keep DIR]

Generates (in a temporary folder) seed-like text dumps and Markdown profiles holding exactly
``--citations`` citations in total (byline and author pages, series links, Wayback autolinks,
``(/node/N)`` paths, bare URLs, Arabic percent-encoded URLs, reference links, images, topic lists),
plus a manifest giving each profile its canonical URL. Then, in this process: ``Store.open``,
``begin_run``, ``discover`` → ``read_profile`` → ``save_profile`` for each file, ``finish_run``.
Nothing is kept in memory between profiles (streamed, as the CLI does without ``--json``).

Prints wall seconds, citations/s, peak RSS (MB, ``resource.getrusage``) and the split between
extraction and storage. Targets (DESIGN §9): 100,000 citations / 5,000 profiles in < 60 s, < 300 MB.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from citewatch.extract import discover, read_profile
from citewatch.extract.manifest import load_manifest
from citewatch.store import Store

SITE = "https://www.washingtoninstitute.org"
ARABIC = "%D9%84%D9%88%D8%A7%D8%A1-%D8%A7%D9%84%D8%A8%D8%A7%D9%82%D8%B1"
WORDS = [
    "militia",
    "brigade",
    "regime",
    "support",
    "training",
    "operations",
    "province",
    "tribal",
    "council",
    "forces",
    "reconciliation",
    "leadership",
    "network",
    "funding",
    "commander",
    "relationship",
    "declared",
    "documented",
]


def sentence(rng: random.Random, words: int = 14) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    return text[0].upper() + text[1:]


def text_profile(n: int, rng: random.Random, citations: int) -> str:
    """A text dump like the seed with exactly ``citations`` citations."""
    head = [
        "",
        f"Profile: Generated Militia {n}",
        "",
        f"by [Author {n} \\(/experts/author-{n}/\\)](/experts/author-{n}/), "
        f"[Second Author \\(/experts/second-{n % 50}/\\)](/experts/second-{n % 50}/)",
        "",
        "Nov 1, 2023",
        "",
        "Affiliate relationships:",
        "",
    ]
    made = 2
    body: list[str] = []
    kinds = ["wayback", "node", "bare", "arabic", "pdf", "plain"]
    while made < citations - 2:
        kind = kinds[made % len(kinds)]
        if kind == "wayback":
            link = f"<https://web.archive.org/web/2017{n % 9}017230858/https://news{n % 40}.example/a/{made}>"
        elif kind == "node":
            link = f"a **designated organization (/node/{n * 7 + made})**"
        elif kind == "bare":
            link = f"https://source{made % 30}.example/report/{n}-{made}."
        elif kind == "arabic":
            link = f"(<https://www.alquds.co.uk/{ARABIC}-{n}-{made}/>)"
        elif kind == "pdf":
            link = f"<{SITE}/sites/default/files/pdf/Note{n}-{made}.pdf#page=2>"
        else:
            link = f"<https://www.example{made % 97}.org/{n}/{made}>"
        body.append(f"- **Item {made}:** {sentence(rng)} according to {link} {sentence(rng, 8)}.")
        made += 1
    tail = ["", "TOPICS", ""]
    while made < citations:
        tail += [f"Topic {made} (/policy-analysis/topic-{made % 12})", ""]
        made += 1
    return "\n".join(head + body + tail) + "\n"


def markdown_profile(n: int, rng: random.Random, citations: int) -> str:
    """A Markdown profile with front matter and exactly ``citations`` citations."""
    lines = [
        "---",
        f"title: Generated Markdown Profile {n}",
        "authors: [Jane Doe, John Roe]",
        "date: 2023-11-01",
        "---",
        "",
        f"# Generated Markdown Profile {n}",
        "",
        "## Sources",
        "",
    ]
    made = 0
    refs = []
    while made < citations - 2:
        mode = made % 4
        if mode == 0:
            lines.append(f"{sentence(rng)} [{made}](https://src{made % 25}.example/{n}/{made}).")
        elif mode == 1:
            lines.append(f"{sentence(rng)} see https://bare{made % 10}.example/{n}?p={made}.")
        elif mode == 2:
            lines.append(f"{sentence(rng)} [ref {made}][r{made}] `https://not.a.citation/`.")
            refs.append(f"[r{made}]: https://ref.example/{n}/{made}")
        else:
            lines.append(f"![chart {made}](/images/{n}-{made}.png)")
        lines.append("")
        made += 1
    lines += ["## Related", "", f"- [Series](/policy-analysis/series/s{n % 5})"]
    lines += [f"- [Other {n}](/policy-analysis/other-{n})", "", *refs, ""]
    return "\n".join(lines)


def generate(folder: Path, profiles: int, citations: int, md_share: float) -> int:
    rng = random.Random(20231101)
    per, extra = divmod(citations, profiles)
    manifest = []
    total = 0
    for n in range(profiles):
        count = per + (1 if n < extra else 0)
        sub = folder / f"batch-{n // 500:02d}"
        sub.mkdir(exist_ok=True)
        if n % 100 < md_share * 100:
            name, text = f"p{n:05d}.md", markdown_profile(n, rng, count)
        else:
            name, text = f"p{n:05d}.txt", text_profile(n, rng, count)
        (sub / name).write_text(text, encoding="utf-8")
        manifest.append(
            f'[[profile]]\npath = "{sub.name}/{name}"\nurl = "{SITE}/policy-analysis/p-{n}"\n'
        )
        total += count
    (folder / "corpus.toml").write_text("\n".join(manifest), encoding="utf-8")
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=5000)
    parser.add_argument("--citations", type=int, default=100_000)
    parser.add_argument("--markdown-share", type=float, default=0.5)
    parser.add_argument("--keep", type=Path, help="generate into DIR and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        folder = args.keep or Path(tmp) / "corpus"
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        expected = generate(folder, args.profiles, args.citations, args.markdown_share)
        generated = time.perf_counter() - t0

        db_path = Path(tmp) / "bench.db"
        started = time.perf_counter()
        store = Store.open(db_path)
        run_id = store.begin_run("scan", ["bench_scan"])
        manifest = load_manifest(folder)
        extract_s = store_s = 0.0
        profiles = citations = findings = 0
        for file in discover([folder]):
            a = time.perf_counter()
            profile = read_profile(file, manifest=manifest)
            b = time.perf_counter()
            store.save_profile(profile, run_id)
            store_s += time.perf_counter() - b
            extract_s += b - a
            profiles += 1
            citations += len(profile.citations)
            findings += len(profile.findings)
        store.finish_run(run_id, counts={"profiles": profiles, "citations": citations})
        wall = time.perf_counter() - started
        rows = store.query("SELECT count(*) AS n FROM citations")[0]["n"]
        urls = store.query("SELECT count(*) AS n FROM urls")[0]["n"]
        store.close()
        db_mb = db_path.stat().st_size / 1e6
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"generated      {profiles:,} profiles, {expected:,} citations in {generated:.1f} s")
    print(f"scanned        {profiles:,} profiles, {citations:,} citations, {findings:,} findings")
    print(f"stored         {rows:,} citation rows, {urls:,} distinct URLs, {db_mb:.1f} MB database")
    print(f"wall           {wall:.1f} s  (extract {extract_s:.1f} s, store {store_s:.1f} s)")
    print(f"throughput     {citations / wall:,.0f} citations/s")
    print(f"peak RSS       {peak_mb:.0f} MB")
    ok = citations == expected and wall < 60 and peak_mb < 300
    print("targets        < 60 s, < 300 MB:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
