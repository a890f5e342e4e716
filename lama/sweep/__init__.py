"""The paper's coordinate-wise beam search over the loss weights κ, α, β, γ, on Optuna storage (``lama sweep``)."""
