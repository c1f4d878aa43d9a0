"""What a reader sees: figures (`plots`, `tradeoff`) and notebook widgets (`widgets`)."""
