"""The second stage: facts of each result against the query (``facts``), a linear ranker over them
(``model``) and its listwise training (``train``)."""
