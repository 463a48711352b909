"""Curation between generation and publish: score every image, then decide what is kept.

`score` adds columns per shard (CLIP score and embedding, hashes, statistics, tags);
`curate` decides globally (filters, three dedup tiers, prior versions, counts) and records a
`reject_reason` for everything it drops; `topup` asks for fresh seeds where an item fell
short. Modules: `config` (the manifest section), `clip` (the scorer), `stats`, `tagging`,
`index` (FAISS), `dedup`, `prior`, `filters`, `metrics`, `topup`.
"""
