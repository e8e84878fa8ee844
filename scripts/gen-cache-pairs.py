#!/usr/bin/env python3
"""Generate a labelled corpus of prompt pairs for testing the semantic cache.

Output: tests/fixtures/cache/pairs.jsonl, one JSON object per line:

    {"a": "...", "b": "...", "same": true|false, "kind": "..."}

`same` is true when the answer to `a` would be a correct answer to `b`, i.e. a
semantic cache may serve the stored answer for `a` when it receives `b`.

Kinds:
  paraphrase      same=true   same meaning, different wording / casing / typos
  changed_number  same=false  a number, year, version, size or date differs
  negation        same=false  meaning flipped (not, dis-, with/without, ...)
  other_entity    same=false  a different name, place, product, language, lib
  other_language  same=false  same question in another natural language (or
                              an explicit request to answer in another one)
  changed_task    same=false  same material, different request
  related_topic   same=false  same domain, a different question
  unrelated       same=false  nothing in common

All pairs are hand-written; the script is deterministic (no randomness).
Regenerate with:  python3 scripts/gen-cache-pairs.py
"""

import json
import os
import sys
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "cache", "pairs.jsonl")

# ---------------------------------------------------------------------------
# Positives: real paraphrases. Facts, numbers, names and language identical.
# ---------------------------------------------------------------------------
PARAPHRASE = [
    # --- coding: Python ---
    ("How do I reverse a list in Python?",
     "Python: flip the order of a list's elements"),
    ("How can I check if a key exists in a Python dictionary?",
     "What's the way to test whether a dict in Python contains a given key?"),
    ("How do I read a file line by line in Python?",
     "In Python, what's the best way to iterate over the lines of a text file?"),
    ("Explain the difference between a list and a tuple in Python.",
     "What is the difference between Python lists and tuples?"),
    ("How do I convert a string to an integer in Python?",
     "python: turn a str into an int"),
    ("How do I sort a dictionary by value in Python?",
     "Python - order a dict by its values"),
    ("How do I merge two dictionaries in Python 3?",
     "Python 3: combine two dicts into one"),
    ("How do I get the current date and time in Python?",
     "python get current datetime"),
    ("Write a Python function that checks if a number is prime.",
     "Can you write me a Python function to test whether a number is prime?"),
    ("How do I make my Python script wait for 2 seconds?",
     "Python: pause execution for 2 seconds"),
    ("How do I lowercase every letter in a string in Python?",
     "Python: convert text to all lower case"),
    ("I have a list of numbers in Python and I'd like to compute their average. "
     "What's the cleanest way to do that?",
     "Python average of a list"),
    ("Hey, quick question: how do I convert a list to a set in Python?",
     "How do I convert a list to a set in Python?"),
    ("how to seperate a string by comma in python",
     "How to separate a string by comma in Python?"),
    ("How do I install numpy?", "how do i install numpy"),
    # --- coding: Rust ---
    ("What does the `?` operator do in Rust?",
     "Can you explain what the question mark operator does in Rust?"),
    ("How do I create a vector in Rust?",
     "What's the syntax for making a new Vec in Rust?"),
    ("Explain ownership and borrowing in Rust",
     "Can you help me understand how ownership and borrowing work in Rust?"),
    ("How do I handle errors in Rust without panicking?",
     "What's the idiomatic way in Rust to deal with errors instead of calling panic?"),
    ("Show me how to loop over a range of numbers in Rust",
     "Rust: iterate through a numeric range with a for loop"),
    # --- coding: SQL ---
    ("How do I select the top 5 rows from a table in SQL?",
     "SQL query to get only the first 5 rows of a table"),
    ("What is the difference between INNER JOIN and LEFT JOIN in SQL?",
     "In SQL, how does a LEFT JOIN differ from an INNER JOIN?"),
    ("How do I remove duplicate rows in a SQL query result?",
     "SQL: how to get only distinct rows in the output of a SELECT"),
    ("Write a SQL query that counts the number of orders per customer.",
     "SQL query: number of orders for each customer"),
    ("What's the SQL to add a column to an existing table?",
     "How do I ALTER a table in SQL to include a new column?"),
    # --- coding: JavaScript / web ---
    ("How do I deep clone an object in JavaScript?",
     "What's the right way to make a deep copy of a JS object?"),
    ("What is the difference between let, const and var in JavaScript?",
     "JavaScript: var vs let vs const - what's the difference?"),
    ("How do I check if an array is empty in JavaScript?",
     "javascript how to test whether an array has no elements"),
    ("What is a closure in JavaScript?", "Explain closures in JavaScript"),
    ("How do I figure out how many characters a string has in JavaScript?",
     "JS string length"),
    ("How do I get rid of whitespace at the start and end of a string in JavaScript?",
     "JS: trim a string"),
    ("How do I get the last element of an array in JavaScript?",
     "JavaScript: access the final item in an array"),
    ("How do I center a div in CSS?", "HOW DO I CENTER A DIV IN CSS"),
    ("What is a REST API?", "what is a rest api??"),
    ("How does HTTPS work?", "how does https work"),
    # --- coding: shell / tools ---
    ("How do I find all files larger than 100 MB in Linux?",
     "Linux shell command to list every file bigger than 100 MB"),
    ("How do I count the number of lines in a file using bash?",
     "bash: count lines in a file"),
    ("What does `chmod 755` do?", "Explain what chmod 755 means"),
    ("How do I kill a process running on port 8080?",
     "I need to stop whatever process is listening on port 8080, how?"),
    ("How do I undo the last git commit but keep my changes?",
     "Git: revert my most recent commit while keeping the changes in my working tree"),
    ("How do I list the contents of a directory in the terminal?",
     "shell command to show what files are in a folder"),
    ("How do I exit vim?", "how do I exit Vim"),
    ("What is Kubernetes?", "what is kubernetes ?"),
    ("Whats the difference between TCP and UDP",
     "What's the difference between TCP and UDP?"),
    ("What is a race condition?", "Can you explain what a race condition is?"),
    ("Explain recursion.", "explain recursion"),
    # --- maths & unit conversion ---
    ("Convert 5 miles to km", "How many kilometers are in 5 miles?"),
    ("What is 15% of 80?", "what's 15 percent of 80"),
    ("How many ounces are in a pound?", "How many oz in 1 lb?"),
    ("Convert 100 degrees Fahrenheit to Celsius", "What is 100°F in Celsius?"),
    ("What is the square root of 144?", "sqrt of 144?"),
    ("How do I calculate the area of a circle?",
     "What's the formula for the area of a circle?"),
    ("What is the derivative of x^2?", "Differentiate x^2"),
    ("How many seconds are in a day?", "How many seconds does one day have?"),
    ("Solve 2x + 3 = 11", "Find x if 2x + 3 = 11"),
    ("Convert 2 cups to milliliters", "How many ml is 2 cups?"),
    ("What is the Pythagorean theorem?", "Explain the Pythagorean theorem"),
    ("How many feet are in a mile?", "Number of feet in one mile?"),
    ("Is 97 a prime number?", "Is the number 97 prime?"),
    ("Could you please tell me how many cups are in a gallon?",
     "How many cups in a gallon?"),
    ("Convert 3 kg to pounds", "convert 3 kg to pounds."),
    ("How many days are in a leap year?", "How many days are in a leap year ?"),
    # --- geography ---
    ("What is the capital of Australia?", "Australia's capital city is what?"),
    ("What is the longest river in the world?", "Which river is the world's longest?"),
    ("Which country has the largest population?", "What is the most populous country?"),
    ("How tall is Mount Everest?", "What's the height of Mt. Everest?"),
    ("What continent is Egypt in?", "Egypt is located on which continent?"),
    ("What is the capital of Canada?", "capital of canada"),
    ("Which ocean is the largest?", "What's the biggest ocean on Earth?"),
    ("What countries border Switzerland?",
     "Which nations share a border with Switzerland?"),
    ("what is the capital of france", "What is the capital of France?"),
    ("What time zone is Tokyo in?", "what time zone is tokyo in"),
    ("What is the GDP of Germany?", "What is the GDP of Germany"),
    ("What is the capitol of Italy?", "What is the capital of Italy?"),
    ("What's the distance from the Earth to the Moon?",
     "How far away is the Moon from Earth?"),
    # --- history ---
    ("When did World War II end?", "What year did WW2 end?"),
    ("Who was the first president of the United States?",
     "Who served as the first US president?"),
    ("Why did the Roman Empire fall?",
     "What were the causes of the fall of the Roman Empire?"),
    ("When did the Berlin Wall fall?", "What year did the Berlin Wall come down?"),
    ("Who wrote the Declaration of Independence?",
     "Who was the author of the Declaration of Independence?"),
    ("What was the Industrial Revolution?", "Explain the Industrial Revolution"),
    ("Who built the pyramids of Giza?", "Who constructed the Giza pyramids?"),
    ("Can you please tell me when the Eiffel Tower was built?",
     "When was the Eiffel Tower built?"),
    ("Who was the British prime minister during most of World War II?",
     "Which UK PM led Britain through most of WW2?"),
    # --- science ---
    ("Why is the sky blue?", "What makes the sky appear blue?"),
    ("What is photosynthesis?", "Explain photosynthesis"),
    ("How does a vaccine work?", "Can you explain how vaccines work?"),
    ("What is the speed of light?", "How fast does light travel?"),
    ("What is the boiling point of water in Fahrenheit?",
     "At what temperature in Fahrenheit does water boil?"),
    ("What is DNA?", "what is dna"),
    ("How do black holes form?",
     "What is the process by which black holes are formed?"),
    ("What's the difference between weather and climate?",
     "How is climate different from weather?"),
    ("What is the chemical formula for table salt?", "Table salt's chemical formula?"),
    ("Why do we have seasons?", "What causes the seasons on Earth?"),
    ("Who discovered penicillin?", "who discovered penicillin   "),
    ("What's the boiling point of water?", "What is the boiling point of water?"),
    ("Whats the diffrence between a virus and bacteria",
     "What's the difference between a virus and bacteria?"),
    ("List the planets in order from the sun", "List the planets in order from the Sun."),
    ("Please explain what a neural network is", "What is a neural network?"),
    # --- cooking ---
    ("How long should I boil an egg for a soft yolk?",
     "How many minutes do I boil an egg to get a runny yolk?"),
    ("What can I use as a substitute for buttermilk?",
     "What's a good replacement for buttermilk in a recipe?"),
    ("How do I make a basic vinaigrette?", "Give me a simple vinaigrette recipe"),
    ("At what temperature should I bake chicken breasts?",
     "What oven temperature is best for baking chicken breasts?"),
    ("How do I cook rice on the stove?",
     "What's the method for cooking rice on a stovetop?"),
    ("How do I keep avocados from turning brown?",
     "How can I stop a cut avocado from browning?"),
    ("What is the difference between baking soda and baking powder?",
     "Baking powder vs baking soda: how are they different?"),
    ("How do I make pancakes from scratch?", "How do I make pancakes  from scratch?"),
    ("Why does my bread come out dense?",
     "What causes a heavy, dense loaf when baking bread?"),
    ("How many calories are in a banana?", "What's the calorie count of one banana?"),
    # --- health ---
    ("What are the symptoms of dehydration?",
     "What are the signs that someone is dehydrated?"),
    ("How much water should I drink per day?", "What's the recommended daily water intake?"),
    ("How many hours of sleep does an adult need?",
     "How much sleep do adults need each night?"),
    ("What are the benefits of regular exercise?",
     "Why is exercising regularly good for you?"),
    ("How can I lower my blood pressure naturally?",
     "What are natural ways to reduce blood pressure?"),
    ("Is it safe to take ibuprofen on an empty stomach?",
     "Can I take ibuprofen without eating first?"),
    ("reccomend some excercises for lower back pain",
     "Recommend some exercises for lower back pain"),
    ("What's the quickest way to get rid of hiccups?", "How can I stop hiccups fast?"),
    ("How can I fall asleep faster?", "Tips for dozing off more quickly at night"),
    # --- finance ---
    ("What is compound interest?", "Explain compound interest"),
    ("What's the difference between a Roth IRA and a traditional IRA?",
     "Roth IRA vs traditional IRA - what are the differences?"),
    ("How do I create a monthly budget?", "What are the steps to make a monthly budget?"),
    ("What is an index fund?", "Can you tell me what an index fund is?"),
    ("How does a credit score work?", "Explain how credit scores work"),
    ("What is inflation?", "define inflation"),
    ("Should I pay off debt or invest first?",
     "Is it better to pay off my debt before investing?"),
    ("I was wondering if you could explain how a mortgage works",
     "How does a mortgage work?"),
    ("Would you mind explaining the difference between a stock and a bond?",
     "Stocks vs bonds: what's the difference?"),
    ("How can I save money on groceries?", "Ways to cut down my food shopping bill"),
    # --- travel ---
    ("Do I need a visa to visit Japan as a US citizen?",
     "As an American citizen, is a visa required to travel to Japan?"),
    ("What is the best time of year to visit Iceland?",
     "When is the best season to travel to Iceland?"),
    ("What should I pack for a week-long beach vacation?",
     "Packing list for a 7-day beach holiday?"),
    ("How early should I arrive at the airport for an international flight?",
     "For an international flight, how long before departure should I get to the airport?"),
    ("What are the top things to do in Rome?", "What are the must-see attractions in Rome?"),
    ("How do I get from Heathrow to central London?",
     "What's the best way to travel from Heathrow airport into central London?"),
    ("I'm planning a trip to Lisbon next spring and I was wondering what the typical "
     "weather is like there at that time of year.",
     "What's the weather like in Lisbon in spring?"),
    # --- writing help ---
    ("Write a polite email to my landlord, Mr. Patel, telling him that the kitchen "
     "faucet in apartment 4B has been leaking since Monday, asking whether a plumber "
     "can come this week, and mentioning that I am available after 5 pm on weekdays "
     "and all day Saturday.",
     "Can you draft a courteous email to my landlord Mr. Patel? The kitchen tap in "
     "apartment 4B has been leaking since Monday. I'd like to ask if he can send a "
     "plumber this week. I'm free after 5 pm on weekdays and all day on Saturday."),
    ("Write an email to my team announcing that our weekly Monday stand-up meeting "
     "will move from 9:30 am to 10:00 am starting next week, because several people "
     "have school drop-offs, and remind them the meeting link stays the same.",
     "Draft an email for my team: starting next week, the weekly Monday stand-up "
     "moves from 9:30 am to 10:00 am since several people do school drop-offs. "
     "Remind everyone that the meeting link is unchanged."),
    ("I run a small bakery and want to write a friendly Instagram caption announcing "
     "that starting this Saturday we will sell gluten-free sourdough loaves, baked "
     "fresh every morning, for a limited time only. Please keep it under 50 words "
     "and add a couple of emojis.",
     "Write a friendly Instagram caption (under 50 words, a couple of emojis) for my "
     "small bakery announcing that from this Saturday we'll sell gluten-free "
     "sourdough loaves, baked fresh each morning, for a limited time only."),
    ("Summarize the plot of Romeo and Juliet",
     "Give me a summary of Romeo and Juliet's plot"),
    ("Write a cover letter for a junior data analyst position",
     "Can you write me a cover letter for a junior data analyst job?"),
    ("Help me write a thank-you note to my coworkers for my farewell gift",
     "Write a thank you message to my colleagues for the farewell present they gave me"),
    ("Proofread this sentence: Their going to the park tomorrow.",
     "Please check this sentence for mistakes: Their going to the park tomorrow."),
    ("Write a short bio for my LinkedIn profile. I'm a nurse with 10 years of "
     "experience in pediatric care.",
     "I'm a nurse with 10 years of pediatric care experience. Can you write a short "
     "LinkedIn bio for me?"),
    ("Summarize this: The city council voted on Tuesday to expand the bike lane "
     "network by 40 kilometers over the next three years, citing a rise in cycling "
     "commuters.",
     "Give me a summary of the following text. The city council voted on Tuesday to "
     "expand the bike lane network by 40 kilometers over the next three years, "
     "citing a rise in cycling commuters."),
    ("Write a professional out-of-office reply saying I'm back on March 3",
     "Draft a professional out of office message: I return on March 3"),
    ("Tell me a joke about cats", "Tell me a joke about cats."),
    ("Recommend a good book on stoicism", "recommend a good book on Stoicism."),
    # --- customer support ---
    ("How do I reset my password?", "I forgot my password, how can I reset it?"),
    ("How can I cancel my subscription?",
     "I want to cancel my subscription. How do I do that?"),
    ("Where can I find my invoice?", "I can't find my invoice, where is it located?"),
    ("How do I change the email address on my account?",
     "How can I update my account's email address?"),
    ("My order hasn't arrived yet, what should I do?",
     "What should I do if my order still hasn't been delivered?"),
    ("Can I get a refund if I cancel within 30 days?",
     "If I cancel within 30 days, am I eligible for a refund?"),
    ("How do I enable two-factor authentication?",
     "How can I turn on 2FA for my account?"),
    ("How do I delete my account?", "What's the process for deleting my account?"),
    ("I can't log in to my account", "I cannot log in to my account."),
    ("How do I recieve payments with Stripe?", "How do I receive payments with Stripe?"),
    ("What do I do if my laptop won't turn on?",
     "My laptop doesn't power up - how do I troubleshoot it?"),
    # --- definitions ---
    ("define entropy", "What is entropy?"),
    ("What does 'ubiquitous' mean?", "Meaning of the word ubiquitous"),
    ("What is machine learning?", "Explain what machine learning is"),
    ("What does API stand for?", "What is API short for?"),
    ("What is a blockchain?", "Explain blockchain to me"),
    ("What does 'serendipity' mean?", "define serendipity"),
    ("What is an oxymoron?", "Can you explain what an oxymoron is?"),
    # --- how-to ---
    ("How do I tie a tie?", "How to tie a necktie?"),
    ("How do I change a flat tire?", "What are the steps for changing a flat tyre?"),
    ("How do I unclog a drain without chemicals?",
     "How can I clear a blocked drain without using chemical cleaners?"),
    ("How do I remove a red wine stain from a carpet?",
     "How can I get red wine out of carpet?"),
    ("How can I improve my public speaking skills?",
     "Tips to get better at public speaking"),
    ("How do I take a screenshot on Windows 11?", "How to screenshot on a Windows 11 PC"),
    ("How do I jump-start a car?", "What's the procedure to jump start a car?"),
    ("What's the fastest way to learn touch typing?",
     "How can I quickly learn to type without looking at the keyboard?"),
    ("How do I stop my glasses from fogging up when wearing a mask?",
     "Tips to prevent spectacles fogging while masked"),
    ("How do I keep my houseplants alive while I'm on vacation for two weeks?",
     "I'm going away for two weeks - how do I make sure my indoor plants survive?"),
    ("I'd love some tips for growing tomatoes on a balcony, thanks!",
     "Give me tips for growing tomatoes on a balcony"),
    # --- trivia ---
    ("Who painted the Mona Lisa?", "Who was the painter of the Mona Lisa?"),
    ("How many players are on a soccer team?",
     "How many players are there on a soccer team?"),
    ("Who wrote Pride and Prejudice?", "Who is the author of Pride and Prejudice?"),
    ("What is the largest planet in our solar system?",
     "Which planet in the solar system is the biggest?"),
    ("How many bones are in the human body?", "How many bones does the human body have?"),
    ("Who invented the telephone?", "Who is credited with inventing the telephone?"),
    ("What is the hardest natural substance?", "Which natural material is the hardest?"),
    ("Hi! I was wondering what the tallest building in the world is.",
     "What is the tallest building in the world?"),
    ("What is the currency of Japan?", "Which money is used in Japan?"),
    ("What is the meaning of life?", "what is the meaning of life?!"),
    # --- grammar / translation ---
    ("Translate 'good morning' into Spanish", "How do you say good morning in Spanish?"),
    ("When should I use 'affect' vs 'effect'?", "What's the difference between affect and effect?"),
    ("What's the difference between 'fewer' and 'less'?",
     "When do I use fewer instead of less?"),
    ("Translate 'thank you very much' into German",
     "How do I say 'thank you very much' in German?"),
    ("What is the past tense of 'swim'?", "past tense of swim"),
    ("Translate into French: Where is the train station?",
     "How would I say 'Where is the train station?' in French?"),
    ("Is 'alot' a word?", "Is alot a real word?"),
    ("What is a dangling modifier?", "Explain dangling modifiers"),
    ("Explain the difference between 'its' and 'it's'", "its vs it's"),
    ("What's a good way to memorize vocabulary in a new language?",
     "Tips for remembering new words when learning a foreign language"),
    # --- product questions ---
    ("Does the iPhone 15 support USB-C?", "Does the iPhone 15 charge over USB-C?"),
    ("What is the battery life of the Kindle Paperwhite?",
     "How long does the Kindle Paperwhite battery last?"),
    ("Is the Apple Watch Series 9 waterproof?",
     "Is the Apple Watch Series 9 water resistant?"),
    ("What's the difference between the PS5 and the PS5 Digital Edition?",
     "PS5 vs PS5 Digital Edition: what's different?"),
    ("Can I use a MacBook Air for video editing?",
     "Is a MacBook Air good enough for editing videos?"),
    ("Is a robot vacuum worth buying?", "Are robot vacuums worth the money?"),
    ("What's a good name for a golden retriever puppy?",
     "Suggest a name for my new golden retriever puppy"),
]

# ---------------------------------------------------------------------------
# Negatives
# ---------------------------------------------------------------------------
CHANGED_NUMBER = [
    ("Convert 5 miles to km", "Convert 7 miles to km"),
    ("What is 15% of 80?", "What is 15% of 60?"),
    ("How do I print hello world in Python 2?", "How do I print hello world in Python 3?"),
    ("Who won the FIFA World Cup in 2014?", "Who won the FIFA World Cup in 2018?"),
    ("Convert 100 degrees Fahrenheit to Celsius", "Convert 10 degrees Fahrenheit to Celsius"),
    ("What is the square root of 144?", "What is the square root of 169?"),
    ("Calculate the monthly payment on a $200,000 mortgage at 6% for 30 years",
     "Calculate the monthly payment on a $200,000 mortgage at 6% for 15 years"),
    ("List 3 tips for better sleep", "List 10 tips for better sleep"),
    ("How long do I roast a 4 kg turkey?", "How long do I roast a 7 kg turkey?"),
    ("What happened in 1969?", "What happened in 1989?"),
    ("Who was the US president in 1850?", "Who was the US president in 1950?"),
    ("Is 97 a prime number?", "Is 91 a prime number?"),
    ("Convert 2 cups to milliliters", "Convert 3 cups to milliliters"),
    ("What is 2 to the power of 10?", "What is 2 to the power of 16?"),
    ("Give me a pancake recipe for 2 people", "Give me a pancake recipe for 12 people"),
    ("How much is 50 euros in US dollars?", "How much is 500 euros in US dollars?"),
    ("What's new in Python 3.12?", "What's new in Python 3.11?"),
    ("Solve 2x + 3 = 11", "Solve 2x + 5 = 11"),
    ("How many calories do I burn walking 5 km?", "How many calories do I burn walking 15 km?"),
    ("What day of the week was January 1, 2000?", "What day of the week was January 1, 2001?"),
    ("Write a 200-word summary of World War I", "Write a 1000-word summary of World War I"),
    ("How do I get the first 5 characters of a string in Python?",
     "How do I get the first 3 characters of a string in Python?"),
    ("What is the recommended daily calorie intake for a 25-year-old woman?",
     "What is the recommended daily calorie intake for a 65-year-old woman?"),
    ("What's the compound interest on $1,000 at 5% for 10 years?",
     "What's the compound interest on $1,000 at 7% for 10 years?"),
    ("Convert 30 cm to inches", "Convert 38 cm to inches"),
    ("What was the population of Tokyo in 1950?", "What was the population of Tokyo in 2020?"),
    ("How many weeks are in 3 months?", "How many weeks are in 5 months?"),
    ("Is it safe to give ibuprofen to a 2-year-old?", "Is it safe to give ibuprofen to a 12-year-old?"),
    ("Plan a 3-day itinerary for Paris", "Plan a 7-day itinerary for Paris"),
    ("What were the main new features of Windows 95?",
     "What were the main new features of Windows 98?"),
    ("How do I install Node.js 18 on Ubuntu 22.04?", "How do I install Node.js 20 on Ubuntu 22.04?"),
    ("How many MB are in 1 GB?", "How many MB are in 8 GB?"),
    ("Make a monthly budget for a take-home income of $3,000",
     "Make a monthly budget for a take-home income of $8,000"),
    ("What's the 10th Fibonacci number?", "What's the 20th Fibonacci number?"),
    ("Which team won the Super Bowl in 2020?", "Which team won the Super Bowl in 2021?"),
    ("What is the boiling point of water at 2,000 meters altitude?",
     "What is the boiling point of water at 4,000 meters altitude?"),
    ("Is a 650 credit score good?", "Is a 750 credit score good?"),
    ("Write a 4-line poem about the ocean", "Write a 14-line poem about the ocean"),
    ("How many hours of sleep does a 3-year-old need?",
     "How many hours of sleep does a 13-year-old need?"),
    ("What's the tip on a $45 bill at 20%?", "What's the tip on a $45 bill at 15%?"),
    ("Convert 72 hours into days", "Convert 84 hours into days"),
    ("What's the date 90 days after March 1, 2024?", "What's the date 60 days after March 1, 2024?"),
    ("SQL: select the 10 most recent orders", "SQL: select the 100 most recent orders"),
    ("Write a polite email to my landlord, Mr. Patel, telling him that the kitchen "
     "faucet in apartment 4B has been leaking since Monday, asking whether a plumber "
     "can come this week, and mentioning that I am available after 5 pm on weekdays "
     "and all day Saturday.",
     "Write a polite email to my landlord, Mr. Patel, telling him that the kitchen "
     "faucet in apartment 4B has been leaking since Monday, asking whether a plumber "
     "can come this week, and mentioning that I am available after 7 pm on weekdays "
     "and all day Saturday."),
]

NEGATION = [
    ("Which foods are safe for dogs?", "Which foods are not safe for dogs?"),
    ("What are the advantages of remote work?", "What are the disadvantages of remote work?"),
    ("How do I increase the font size in VS Code?", "How do I decrease the font size in VS Code?"),
    ("What should I do before a job interview?", "What should I do after a job interview?"),
    ("How do I make bread with yeast?", "How do I make bread without yeast?"),
    ("Which plants are toxic to cats?", "Which plants are non-toxic to cats?"),
    ("What are the pros of nuclear energy?", "What are the cons of nuclear energy?"),
    ("Why is coffee good for you?", "Why is coffee bad for you?"),
    ("How do I enable JavaScript in Chrome?", "How do I disable JavaScript in Chrome?"),
    ("pandas: select rows where a column is null",
     "pandas: select rows where a column is not null"),
    ("SQL: find customers who have placed an order",
     "SQL: find customers who have never placed an order"),
    ("How do I show hidden files in Finder on a Mac?",
     "How do I stop showing hidden files in Finder on a Mac?"),
    ("What should I eat to gain weight?", "What should I eat to lose weight?"),
    ("How do I add a user to a group in Linux?", "How do I remove a user from a group in Linux?"),
    ("What are the symptoms of high blood pressure?",
     "What are the symptoms of low blood pressure?"),
    ("Foods to eat with gout", "Foods to avoid with gout"),
    ("What are the benefits of intermittent fasting?",
     "What are the risks of intermittent fasting?"),
    ("How do I stage a file in git?", "How do I unstage a file in git?"),
    ("Write a positive review of a hotel stay", "Write a negative review of a hotel stay"),
    ("Why did the stock market go up today?", "Why did the stock market go down today?"),
    ("What happens to bond prices if interest rates rise?",
     "What happens to bond prices if interest rates fall?"),
    ("Suggest indoor activities in London", "Suggest outdoor activities in London"),
    ("Which countries drive on the left?", "Which countries drive on the right?"),
    ("Give me arguments for a four-day work week",
     "Give me arguments against a four-day work week"),
    ("How can I make my coffee stronger?", "How can I make my coffee weaker?"),
    ("Name some birds that cannot fly", "Name some birds that can fly"),
    ("Rust: how do I make a variable mutable?", "Rust: how do I make a variable immutable?"),
    ("JavaScript: check if a string contains a substring",
     "JavaScript: check if a string does not contain a substring"),
    ("Checklist of things to do before moving house",
     "Checklist of things to do after moving house"),
    ("Reasons to learn Rust", "Reasons not to learn Rust"),
    ("What increases the risk of heart disease?", "What decreases the risk of heart disease?"),
    ("How do I turn on dark mode in Windows 11?", "How do I turn off dark mode in Windows 11?"),
    ("Which vegetables grow well in shade?", "Which vegetables grow well in full sun?"),
    ("Python: how to sort a list in ascending order",
     "Python: how to sort a list in descending order"),
    ("What are the strengths of democracy?", "What are the weaknesses of democracy?"),
    ("Signs that a job interview went well", "Signs that a job interview went badly"),
    ("List foods high in iron", "List foods low in iron"),
    ("How do I allow a port through the Ubuntu firewall?",
     "How do I block a port with the Ubuntu firewall?"),
    ("What is a landlord allowed to do during a tenancy in the UK?",
     "What is a landlord not allowed to do during a tenancy in the UK?"),
    ("Give me a synonym for 'happy'", "Give me an antonym for 'happy'"),
    ("Write a short note to my daughter's teacher, Ms. Alvarez, letting her know that "
     "Emma will be attending the school trip to the science museum on Friday, and "
     "asking whether the children who go need to bring a packed lunch.",
     "Write a short note to my daughter's teacher, Ms. Alvarez, letting her know that "
     "Emma will not be attending the school trip to the science museum on Friday, and "
     "asking whether the children who stay behind need to bring a packed lunch."),
]

OTHER_ENTITY = [
    ("What is the capital of France?", "What is the capital of Spain?"),
    ("How do I reverse a list in Python?", "How do I reverse a list in Rust?"),
    ("How do I connect to a Postgres database from Node.js?",
     "How do I connect to a MySQL database from Node.js?"),
    ("Who wrote Hamlet?", "Who wrote Don Quixote?"),
    ("When was the Eiffel Tower built?", "When was the Statue of Liberty built?"),
    ("How tall is Mount Everest?", "How tall is Mount Kilimanjaro?"),
    ("Do I need a visa to visit Japan as a US citizen?",
     "Do I need a visa to visit Japan as an Indian citizen?"),
    ("How do I read a CSV file with pandas?", "How do I read a CSV file with polars?"),
    ("What is the population of Brazil?", "What is the population of Argentina?"),
    ("What is the battery life of the Kindle Paperwhite?",
     "What is the battery life of the Kobo Clara 2E?"),
    ("How do I make an HTTP request in JavaScript?", "How do I make an HTTP request in Go?"),
    ("Who painted the Mona Lisa?", "Who painted The Starry Night?"),
    ("What is the best time of year to visit Iceland?",
     "What is the best time of year to visit Thailand?"),
    ("How do I cancel my Netflix subscription?", "How do I cancel my Spotify subscription?"),
    ("What is the boiling point of water?", "What is the boiling point of ethanol?"),
    ("Explain the causes of World War I", "Explain the causes of the Vietnam War"),
    ("How do I install Docker on Ubuntu?", "How do I install Docker on Windows?"),
    ("What does the React useEffect hook do?", "What does the React useMemo hook do?"),
    ("Is the iPhone 15 waterproof?", "Is the Pixel 8 waterproof?"),
    ("How many calories are in a banana?", "How many calories are in an avocado?"),
    ("What is the currency of Japan?", "What is the currency of South Korea?"),
    ("Translate 'good morning' into Spanish", "Translate 'good morning' into Italian"),
    ("Who was the first president of the United States?",
     "Who was the first president of France?"),
    ("How do I center a div with Flexbox?", "How do I center a div with CSS Grid?"),
    ("What are the side effects of ibuprofen?", "What are the side effects of paracetamol?"),
    ("How does Kafka guarantee message ordering?",
     "How does RabbitMQ guarantee message ordering?"),
    ("How do I get from Heathrow to central London?",
     "How do I get from Gatwick to central London?"),
    ("Write a short biography of Marie Curie", "Write a short biography of Ada Lovelace"),
    ("What's the difference between a list and a tuple in Python?",
     "What's the difference between a list and a set in Python?"),
    ("How do I make a cheese souffle?", "How do I make a chocolate souffle?"),
    ("In bash, how do I loop over files in a directory?",
     "In PowerShell, how do I loop over files in a directory?"),
    ("What time zone is Tokyo in?", "What time zone is Sydney in?"),
    ("Rust: how do I parse a string to an i32?", "Rust: how do I parse a string to an f64?"),
    ("What is Tesla's stock ticker?", "What is Nvidia's stock ticker?"),
    ("Summarize the plot of Romeo and Juliet", "Summarize the plot of Macbeth"),
    ("How do I deploy a Flask app to Heroku?", "How do I deploy a Django app to Heroku?"),
    ("What is the largest city in Canada?", "What is the largest city in Australia?"),
    ("How do I remove a red wine stain from a carpet?",
     "How do I remove a coffee stain from a carpet?"),
    ("What is Einstein famous for?", "What is Newton famous for?"),
    ("How do I enable two-factor authentication on Gmail?",
     "How do I enable two-factor authentication on Outlook?"),
    ("SQL: how do I get the current timestamp in PostgreSQL?",
     "SQL: how do I get the current timestamp in SQL Server?"),
    ("I run a small bakery and want to write a friendly Instagram caption announcing "
     "that starting this Saturday we will sell gluten-free sourdough loaves, baked "
     "fresh every morning, for a limited time only. Please keep it under 50 words "
     "and add a couple of emojis.",
     "I run a small bakery and want to write a friendly Instagram caption announcing "
     "that starting this Saturday we will sell vegan cinnamon rolls, baked "
     "fresh every morning, for a limited time only. Please keep it under 50 words "
     "and add a couple of emojis."),
]

OTHER_LANGUAGE = [
    ("What is the capital of Australia?", "¿Cuál es la capital de Australia?"),
    ("How do I reverse a list in Python?", "Comment inverser une liste en Python ?"),
    ("Why is the sky blue?", "Warum ist der Himmel blau?"),
    ("What are the symptoms of dehydration?", "Quali sono i sintomi della disidratazione?"),
    ("How do I reset my password?", "Como faço para redefinir minha senha?"),
    ("What is photosynthesis?", "Wat is fotosynthese?"),
    ("How many hours of sleep does an adult need?", "大人は何時間の睡眠が必要ですか？"),
    ("What is compound interest?", "什么是复利？"),
    ("How do I cook rice on the stove?", "¿Cómo cocino arroz en la estufa?"),
    ("Explain the Industrial Revolution", "Explique la révolution industrielle"),
    ("Write a polite email asking my manager for a day off on Friday.",
     "Schreibe eine höfliche E-Mail, in der ich meinen Vorgesetzten um einen freien "
     "Tag am Freitag bitte."),
    ("What is the capital of Canada?", "What is the capital of Canada? Please answer in Spanish."),
    ("Explain what machine learning is", "Explain what machine learning is, answer in French"),
    ("Who painted the Mona Lisa?", "Chi ha dipinto la Gioconda?"),
    ("What is the best time of year to visit Iceland?",
     "Qual é a melhor época do ano para visitar a Islândia?"),
    ("How do I change a flat tire?", "Hoe vervang ik een lekke band?"),
    ("What is a black hole?", "ブラックホールとは何ですか？"),
    ("How do I make a basic vinaigrette?", "Comment faire une vinaigrette simple ?"),
    ("What is inflation?", "¿Qué es la inflación?"),
    ("How long should I boil an egg?", "Wie lange muss ich ein Ei kochen?"),
    ("What is the speed of light?", "光速是多少？"),
    ("How do I delete my account?", "Come posso eliminare il mio account?"),
    ("Summarize the plot of Romeo and Juliet", "Resuma o enredo de Romeu e Julieta"),
    ("What is the difference between a virus and bacteria?",
     "Wat is het verschil tussen een virus en een bacterie?"),
    ("Give me tips for learning to play the guitar",
     "Give me tips for learning to play the guitar. Reply in German."),
    ("Is it safe to take ibuprofen on an empty stomach?",
     "Peut-on prendre de l'ibuprofène à jeun sans risque ?"),
    ("What is the tallest building in the world?", "世界で一番高いビルは何ですか？"),
    ("How do I open a bank account as a foreigner?",
     "¿Cómo abro una cuenta bancaria siendo extranjero?"),
    ("When did the Berlin Wall fall?", "Wann fiel die Berliner Mauer?"),
    ("Write a haiku about the sea", "Écris un haïku sur la mer"),
    ("What are the benefits of regular exercise?",
     "Quais são os benefícios do exercício regular?"),
    ("How do I politely say no to a coworker?", "如何礼貌地拒绝同事？"),
    ("What is a closure in JavaScript?", "Cos'è una closure in JavaScript?"),
    ("Recommend three books about Roman history",
     "Raad me drie boeken over de Romeinse geschiedenis aan"),
    ("Explain how vaccines work, in Japanese please", "Explain how vaccines work"),
    ("What should I pack for a week-long beach vacation?",
     "Was sollte ich für einen einwöchigen Strandurlaub einpacken?"),
    ("¿Cuál es la montaña más alta del mundo?",
     "Quelle est la plus haute montagne du monde ?"),
    ("How do I convert Celsius to Fahrenheit?",
     "Comment convertir des degrés Celsius en Fahrenheit ?"),
    ("Write a polite email to my landlord, Mr. Patel, telling him that the kitchen "
     "faucet in apartment 4B has been leaking since Monday, asking whether a plumber "
     "can come this week, and mentioning that I am available after 5 pm on weekdays "
     "and all day Saturday.",
     "Rédige un e-mail poli à mon propriétaire, M. Patel, pour lui dire que le "
     "robinet de la cuisine de l'appartement 4B fuit depuis lundi, lui demander si "
     "un plombier peut passer cette semaine, et préciser que je suis disponible "
     "après 17 h en semaine et toute la journée le samedi."),
    ("What is the GDP of Germany?", "What is the GDP of Germany? Answer in Portuguese."),
]

CHANGED_TASK = [
    ("Summarise this paragraph: The company reported a 12% rise in quarterly revenue, "
     "driven mainly by strong demand for its cloud services in Europe and Asia.",
     "Translate this paragraph into French: The company reported a 12% rise in "
     "quarterly revenue, driven mainly by strong demand for its cloud services in "
     "Europe and Asia."),
    ("Write a haiku about the sea", "Write a limerick about the sea"),
    ("Explain this Python code: print(sum(x*x for x in range(10)))",
     "Rewrite this Python code as a for loop: print(sum(x*x for x in range(10)))"),
    ("Fix the grammar in this sentence: She don't like apples and never eat them.",
     "Translate into German: She don't like apples and never eat them."),
    ("Write a cover letter for a junior data analyst position",
     "Write a resume for a junior data analyst position"),
    ("Summarize the plot of Romeo and Juliet", "Analyze the main themes of Romeo and Juliet"),
    ("Write a Python function that checks if a number is prime",
     "Write unit tests for a Python function that checks if a number is prime"),
    ("Explain what this SQL query does: SELECT name FROM users WHERE age > 30 ORDER BY name;",
     "Convert this SQL query to a pandas expression: SELECT name FROM users WHERE "
     "age > 30 ORDER BY name;"),
    ("Write a poem about autumn", "Write a short story about autumn"),
    ("Write a recipe for banana bread",
     "Write a product description for the banana bread sold at my bakery"),
    ("Proofread my email: Hi Sam, just checking if you recieved the report I sent on "
     "Friday. Thanks!",
     "Make my email more formal: Hi Sam, just checking if you recieved the report I "
     "sent on Friday. Thanks!"),
    ("Translate 'Where is the library?' into French",
     "How do I pronounce 'Where is the library?' in French?"),
    ("Write a tweet announcing our new mobile app",
     "Write a press release announcing our new mobile app"),
    ("List the planets in order from the Sun", "List the planets in order of size"),
    ("Explain recursion", "Write a joke about recursion"),
    ("Define photosynthesis", "Write a 5-question quiz about photosynthesis"),
    ("Summarize this email: Hi team, the server migration is postponed to next "
     "Thursday because the vendor needs more time to test the backups. Please hold "
     "off on any deployments until then. - Priya",
     "Write a reply to this email: Hi team, the server migration is postponed to next "
     "Thursday because the vendor needs more time to test the backups. Please hold "
     "off on any deployments until then. - Priya"),
    ("Write a limerick about a cat", "Draw an ASCII art cat"),
    ('Convert this JSON to YAML: {"name": "app", "port": 8080}',
     'Convert this JSON to XML: {"name": "app", "port": 8080}'),
    ("Review this Rust code: fn add(a: i32, b: i32) -> i32 { a + b }",
     "Write doc comments for this Rust code: fn add(a: i32, b: i32) -> i32 { a + b }"),
    ("Create a packing list for a trip to Iceland", "Create a budget for a trip to Iceland"),
    ("Rewrite this sentence to sound more formal: We gotta finish this by Friday.",
     "Translate to Spanish: We gotta finish this by Friday."),
    ("Summarize the French Revolution in five sentences",
     "Write a timeline of the French Revolution"),
    ("Generate a title for a blog post about remote work",
     "Generate an outline for a blog post about remote work"),
    ("Explain the rules of chess", "Write a short history of chess"),
    ("Write a regex that matches email addresses",
     r"Explain this regex: ^[\w.+-]+@[\w-]+\.[\w.]+$"),
    ("Paraphrase this: The meeting has been moved to 3 pm due to a scheduling conflict.",
     "Translate into Italian: The meeting has been moved to 3 pm due to a scheduling conflict."),
    ("Write interview questions for a software engineer candidate",
     "Write sample answers to interview questions for a software engineer candidate"),
    ("Critique my haiku: Silent morning pond / a frog leaps into the light / ripples fade away",
     "Translate my haiku into Japanese: Silent morning pond / a frog leaps into the "
     "light / ripples fade away"),
    ("Write a bedtime story about a dragon", "Write a song about a dragon"),
    ("Shorten this text: Due to unforeseen circumstances beyond our control, the event "
     "that was originally scheduled for Saturday has unfortunately been cancelled.",
     "Expand this text into a full paragraph: Due to unforeseen circumstances beyond "
     "our control, the event that was originally scheduled for Saturday has "
     "unfortunately been cancelled."),
    ("Write a product description for noise-cancelling headphones",
     "Write a customer complaint about noise-cancelling headphones"),
    ("Check this Python code for bugs: def avg(xs): return sum(xs) / len(xs)",
     "Add type hints to this Python code: def avg(xs): return sum(xs) / len(xs)"),
    ("Use the word 'ubiquitous' in a sentence", "What does 'ubiquitous' mean?"),
    ("Outline an essay about climate change",
     "Write a conclusion for an essay about climate change"),
    ("Convert this recipe to metric: 2 cups flour, 1 stick butter, bake at 350°F",
     "Double this recipe: 2 cups flour, 1 stick butter, bake at 350°F"),
    ("Write a birthday message for my mom", "Plan a birthday party for my mom"),
    ("Write an email to my team announcing that our weekly Monday stand-up meeting "
     "will move from 9:30 am to 10:00 am starting next week, because several people "
     "have school drop-offs, and remind them the meeting link stays the same.",
     "Write a Slack poll asking my team whether our weekly Monday stand-up meeting "
     "should move from 9:30 am to 10:00 am starting next week, because several people "
     "have school drop-offs, and remind them the meeting link stays the same."),
]

RELATED_TOPIC = [
    ("How do I sort a list in Python?", "How do I shuffle a list in Python?"),
    ("What is the capital of Australia?", "What is the largest city in Australia?"),
    ("How do I install Python on Windows?", "How do I update Python on Windows?"),
    ("How do I create a table in SQL?", "How do I rename a table in SQL?"),
    ("When did World War II end?", "How many people died in World War II?"),
    ("What is the boiling point of water?", "What is the density of water?"),
    ("How long should I boil an egg?", "How do I poach an egg?"),
    ("What are the symptoms of the flu?", "How is the flu treated?"),
    ("How does a credit score work?", "How do I check my credit score for free?"),
    ("What is the best time of year to visit Iceland?", "How expensive is a trip to Iceland?"),
    ("How do I reset my password?", "How do I change my username?"),
    ("What is a Roth IRA?", "What is the contribution limit for a Roth IRA?"),
    ("How do I declare a variable in Rust?", "How do I declare a constant in Rust?"),
    ("How do I make an HTTP GET request in JavaScript?", "How do I parse JSON in JavaScript?"),
    ("How do I find files by name in Linux?",
     "How do I search inside files for a string in Linux?"),
    ("Who painted the Mona Lisa?", "Where is the Mona Lisa displayed?"),
    ("What is photosynthesis?", "What is cellular respiration?"),
    ("How do I make a sourdough starter?", "How do I store a sourdough starter?"),
    ("What is the population of Japan?", "What language is spoken in Japan?"),
    ("What causes inflation?", "How is inflation measured?"),
    ("How do I tie a tie?", "How do I tie a bow tie?"),
    ("What is a black hole?", "How was the first image of a black hole captured?"),
    ("How do I remove duplicates from a list in Python?",
     "How do I count duplicates in a list in Python?"),
    ("What does HTTP status 404 mean?", "How do I create a custom 404 page?"),
    ("How do I join two tables in SQL?", "How do I group results in SQL?"),
    ("How do I write a cover letter?", "How do I write a resignation letter?"),
    ("What are the rules of tennis?", "Who has won the most tennis Grand Slam titles?"),
    ("Where can I find my invoice?", "How do I update my billing address?"),
    ("How do I get a refund for a cancelled flight?",
     "What compensation can I get for a delayed flight?"),
    ("How do I define a function in JavaScript?", "How do I define a class in JavaScript?"),
    ("What is the Pythagorean theorem?", "Who was Pythagoras?"),
    ("What vaccines do I need for travel to Kenya?",
     "What is the best time to go on safari in Kenya?"),
    ("How do I knead bread dough?", "How long should bread dough rise?"),
    ("What's the difference between a stock and a bond?", "How do I start investing in stocks?"),
    ("How do I set up a Python virtual environment?", "How do I install packages with pip?"),
    ("What does 'ubiquitous' mean?", "What's the etymology of 'ubiquitous'?"),
    ("How do I lower my cholesterol?", "What is a normal cholesterol level?"),
    ("How do I write a for loop in bash?", "How do I write an if statement in bash?"),
    ("How do I merge two branches in git?", "How do I resolve merge conflicts in git?"),
    ("What is the Eiffel Tower made of?",
     "How many visitors does the Eiffel Tower get each year?"),
    ("I'm planning a 10-day trip to Japan in April with my partner; we love food, "
     "temples and hiking and would rather avoid big crowds. Can you suggest a "
     "day-by-day itinerary?",
     "I'm planning a 10-day trip to Japan in April with my partner; we love food, "
     "temples and hiking and would rather avoid big crowds. How much money should we "
     "budget for the whole trip?"),
]

UNRELATED = [
    ("How do I reverse a list in Python?", "What's a good recipe for lasagna?"),
    ("What is the capital of Peru?", "How do I reset my router?"),
    ("Write a haiku about spring", "What is the interest rate on a 30-year mortgage?"),
    ("Explain quantum entanglement", "Best hiking boots for wide feet"),
    ("How many ounces are in a pound?", "Who directed the movie Inception?"),
    ("Translate 'hello' into Japanese", "How do I fix a leaking faucet?"),
    ("define entropy", "Plan a birthday party for a 6-year-old"),
    ("What are the symptoms of a migraine?", "How do I set up a React project with Vite?"),
    ("When was the Magna Carta signed?", "How do I make cold brew coffee?"),
    ("SQL: count rows in a table", "Tips for a first date"),
    ("Cancel my order", "Why do cats knead blankets?"),
    ("What's the weather like in Bali in August?", "How do I calculate standard deviation?"),
    ("Write an email asking for a raise", "What is the chemical symbol for gold?"),
    ("How do I change the oil in my car?",
     "Who won the Nobel Prize in Literature in 2016?"),
    ("Recommend a good sci-fi novel", "How do I file my taxes as a freelancer?"),
    ("What does 'carpe diem' mean?", "Rust: how to spawn a thread"),
    ("Is the Samsung Galaxy S24 waterproof?", "What caused the Great Depression?"),
    ("How do I train my puppy to sit?", "Convert 250 grams of flour to cups"),
    ("hi", "What is the GDP of India?"),
    ("How do I meditate?", "What's the difference between TCP and UDP?"),
    ("Bash: rename all .txt files to .md", "What were the main causes of the French Revolution?"),
]

GROUPS = [
    ("paraphrase", True, PARAPHRASE),
    ("changed_number", False, CHANGED_NUMBER),
    ("negation", False, NEGATION),
    ("other_entity", False, OTHER_ENTITY),
    ("other_language", False, OTHER_LANGUAGE),
    ("changed_task", False, CHANGED_TASK),
    ("related_topic", False, RELATED_TOPIC),
    ("unrelated", False, UNRELATED),
]

MIN_PER_KIND = {
    "changed_number": 30,
    "negation": 30,
    "other_entity": 30,
    "other_language": 30,
    "changed_task": 30,
}


def build():
    rows = []
    seen = {}
    problems = []
    for kind, same, pairs in GROUPS:
        for a, b in pairs:
            if not a.strip() or not b.strip():
                problems.append(f"{kind}: empty prompt in {a!r} / {b!r}")
            if a == b:
                problems.append(f"{kind}: identical strings {a!r}")
            key = frozenset((a, b))
            if key in seen:
                problems.append(f"{kind}: duplicate pair (also in {seen[key]}): {a!r} / {b!r}")
            seen[key] = kind
            rows.append({"a": a, "b": b, "same": same, "kind": kind})
    return rows, problems


def main():
    rows, problems = build()

    kinds = Counter(r["kind"] for r in rows)
    labels = Counter(r["same"] for r in rows)
    total = len(rows)
    if total < 420:
        problems.append(f"only {total} pairs, need >= 420")
    for kind, minimum in MIN_PER_KIND.items():
        if kinds[kind] < minimum:
            problems.append(f"kind {kind}: {kinds[kind]} < {minimum}")
    pos_share = labels[True] / total
    if not 0.40 <= pos_share <= 0.50:
        problems.append(f"positive share {pos_share:.1%} outside 40-50 %")
    if problems:
        for p in problems:
            print("ERROR:", p, file=sys.stderr)
        return 1

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    # Length profile (whitespace words; CJK prompts count as one word).
    lengths = [len(p.split()) for r in rows for p in (r["a"], r["b"])]
    buckets = Counter()
    for n in lengths:
        if n <= 3:
            buckets["1-3 words"] += 1
        elif n <= 30:
            buckets["4-30 words"] += 1
        elif n < 40:
            buckets["31-39 words"] += 1
        else:
            buckets["40+ words"] += 1

    print(f"wrote {total} pairs to {os.path.relpath(OUT, ROOT)}")
    print("per kind:")
    for kind, _, _ in GROUPS:
        print(f"  {kind:15s} {kinds[kind]:4d}")
    print("per label:")
    print(f"  same=true       {labels[True]:4d}  ({labels[True] / total:.1%})")
    print(f"  same=false      {labels[False]:4d}  ({labels[False] / total:.1%})")
    print("prompt lengths:")
    for name in ("1-3 words", "4-30 words", "31-39 words", "40+ words"):
        print(f"  {name:15s} {buckets[name]:4d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
