"""The adversarial suite: each attack class of issue 11 against the running stack."""
