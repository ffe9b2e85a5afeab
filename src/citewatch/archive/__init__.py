"""The Wayback Machine side of citewatch (DESIGN §6, docs/archive.md).

One module per job:

* :mod:`.gateway` — endpoints, per-family rate limiters, retries, the circuit breaker;
* :mod:`.cdx` — CDX query parameters and answers (header row, ``[]``, duplicates, revisits,
  resume keys, blocked sites);
* :mod:`.lookup` — ``lookup(url)`` and host-batched ``lookup_many(urls)``;
* :mod:`.availability` — the availability API, as a fallback;
* :mod:`.replay` — fetching a capture back (cited archive links, ``--verify``);
* :mod:`.spn` — Save Page Now 2 submit/poll and error classification;
* :mod:`.policy` — which URLs, which citation dates, who gets saved;
* :mod:`.choose` — which capture stands for a citation;
* :mod:`.runner` — ``run_archive``, the ``citewatch archive`` step.
"""
