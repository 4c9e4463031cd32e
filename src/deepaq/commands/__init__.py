"""One module per CLI verb; see deepaq.cli for the contract each module follows."""
