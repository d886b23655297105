from chatgpt_wecom.cli import main

main()
