"""What a reader sees; every figure and widget of the package is drawn here, from frames `experiments/` computed:
training curves and freeze maps (`plots`), quality against retention (`tradeoff`), the strategy chart and explorer
of notebook 06 (`frontier`), `hft compare`'s chart (`comparison`), verdict forest plots (`evidence`), the oracle's
map and fronts (`oracle`), the freeze-pattern picker (`widgets`) and the legibility check of a figure (`legibility`)."""
