"""The runs behind the notebooks and the `hft` command; they compute, `viz/` draws. One encoder run from names
(`classification`); decoder runs with the task as a prompt (`prompts`, `decoder`); what one sweep cell runs
(`protocols`: classification, sequential forgetting, decoder curves); the experiments behind the evidence
(`catalogue`) and their resumable multi-seed sweeps with provenance (`sweep`); each strategy's rate chosen on
validation and the fresh-seed confirmation (`tuning`); claims and their verdicts from the stored sweeps (`evidence`);
every strategy's quality, retention and cost side by side (`frontier`); the 64-subset oracle (`oracle`); and the
console command (`cli`, with `compare` for `hft compare`)."""
