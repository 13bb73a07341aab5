[
  inputs: ["{mix,.formatter}.exs", "bench.exs", "{config,lib,test}/**/*.{ex,exs}"]
]
