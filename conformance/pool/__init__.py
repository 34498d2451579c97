"""The rank pool: ranks started once per world size that run registered scenarios one check after another."""
