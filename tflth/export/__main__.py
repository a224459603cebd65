from tflth.export.cli import main

main()
