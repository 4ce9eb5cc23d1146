#!/usr/bin/env python3
"""The Fedorenko et al. (2010) language localizer as a stimulus table for
topo.responses: every row of langloc_fmri_run{1,2}_stim_set{1..5}.csv in the
given directory (an index, 12 words, then S or N), in file order, as
item (uint32, a running number), text (the 12 words, lowercased, joined by
spaces: the grammar corpus the models are trained on is lowercase), label
(S or N). A stand-in until stimuli.langloc lands (pipelines/topolm.yaml).

usage: langloc_stimuli.py DIR OUT.parquet
"""
import csv
import sys

import pyarrow as pa
import pyarrow.parquet as pq

directory, out = sys.argv[1], sys.argv[2]
texts, labels = [], []
for run in (1, 2):
    for stim_set in range(1, 6):
        path = f"{directory}/langloc_fmri_run{run}_stim_set{stim_set}.csv"
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != 14 or row[13] not in ("S", "N"):
                sys.exit(f"{path}:{line}: expected an index, 12 words and S or N, got {row}")
            texts.append(" ".join(word.lower() for word in row[1:13]))
            labels.append(row[13])
table = pa.table({
    "item": pa.array(range(len(texts)), pa.uint32()),
    "text": pa.array(texts, pa.string()),
    "label": pa.array(labels, pa.string()),
})
pq.write_table(table, out)
