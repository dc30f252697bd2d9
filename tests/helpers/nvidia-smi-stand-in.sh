#!/bin/sh
# A stand-in for nvidia-smi on a simulated GPU host: the CSV the queries Gantry makes print.
case "$*" in
  *utilization.gpu*) echo "87, 10240, 24564" ;;
  *name,memory.total,driver_version*) echo "NVIDIA GeForce RTX 4090, 24564, 550.54.14" ;;
  *) echo "NVIDIA-SMI 550.54.14" ;;
esac
