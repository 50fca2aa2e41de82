"""The text example: a small GPT-2 trained with the Hugging Face ``Trainer`` on CPU.

Nothing is downloaded: the documents are generated (:mod:`.corpus`), the tokenizer is a
byte-level BPE trained on them (:mod:`.tokenizer`), and the model is built from a
configuration. Its naive settings reproduce what people most often report as a slow
Trainer -- the collator tokenises whole documents every step, ``dataloader_num_workers``
is 0, and it logs every step -- and ``--fixed`` switches all three::

    python -m trainperf.examples.text.train            # naive
    python -m trainperf.examples.text.train --fixed
    trainperf doctor -- python -m trainperf.examples.text.train

Needs ``pip install "trainperf[hf]"``.
"""
