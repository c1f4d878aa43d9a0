"""Running at scale: the frozen-prefix cache (`caching`), gradient checkpointing that works with frozen embeddings
(`memory`), DDP under `accelerate launch` (`distributed`), FSDP2 sharding (`sharding`) and freezing inside
`transformers.Trainer` (`hf_trainer`)."""
