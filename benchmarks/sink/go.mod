module eventdelivery/benchmarks/sink

go 1.22
