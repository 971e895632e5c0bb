"""Semantic-Similarity in batch: items alike in meaning, and rankingInfluence blending popularity in."""

import numpy as np

NEEDS = ("aws-semantic-similarity",)


def test_semantic_similarity_and_ranking_influence(lab):
    items = [str(i) for i in lab.cat.item_ids[:15]]
    uri = lab.put("semantic/items.json", [{"itemId": i} for i in items])
    plain, plain_out = lab.inference("aws-semantic-similarity", uri, numResults=10)
    popular, popular_out = lab.inference("aws-semantic-similarity", uri, numResults=10,
                                         batchInferenceJobConfig={"rankingInfluence": {"POPULARITY": 1.0}})
    assert plain["status"] == popular["status"] == "ACTIVE", popular
    a, b = lab.output(plain_out + "items.json.out"), lab.output(popular_out + "items.json.out")
    # Same descriptions mean same genre: the text model finds the query's genre.
    same = [np.mean([lab.cat.genre_of(x)[0] == lab.cat.genre_of(r["input"]["itemId"])[0]
                     for x in r["output"]["recommendedItems"]]) for r in a]
    assert np.mean(same) > 0.8
    counts = np.bincount(lab.cat.items, minlength=len(lab.cat.item_ids))
    pop = lambda rows: np.mean([counts[np.searchsorted(lab.cat.item_ids, x)]  # noqa: E731
                                for r in rows for x in r["output"]["recommendedItems"]])
    assert pop(b) > pop(a)  # POPULARITY influence moves popular items up
