"""The read side's logic: the source port it reads through, and the answers (custody,
readings, verdicts, bundles) built from it."""
