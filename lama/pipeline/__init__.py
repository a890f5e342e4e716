"""What only the DVC pipeline needs: ``params.yaml`` (composition, parsing, checks), where the stages read and
write, how a stage runs, and the sweep's entry. The library below knows nothing of it."""
