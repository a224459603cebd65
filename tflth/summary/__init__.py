"""`tflth summarize` (its command line: cli), in parts by what they do:

read            run folders and their metrics.json files as records; hparams.json; the kind of a folder
over_seeds      statistics over seeds: spread, interval, training cost, paired differences
lottery         a lottery run's records as rows, one per level
sparse          sparse-training folders as variants, one per folder
imp_comparison  each sparse variant beside the lottery level nearest in weights kept
markdown        the tables
plots           the figures
report          one summary: markdown, JSON and figures
"""
