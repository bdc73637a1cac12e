from refract_cli.main import main

main()
