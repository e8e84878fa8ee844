#!/usr/bin/env python3
"""Generate a held-out, hand-labelled corpus for the semantic cache.

Writes tests/fixtures/cache/heldout.jsonl, one JSON object per line:
  {"a": ..., "b": ..., "same": bool, "kind": ...}

`same` is true when an answer to `a` would be a correct answer to `b`.
Every pair below is hand-written; the script is stdlib-only and deterministic.
"""
import json
import os
import sys
from collections import Counter

PARAPHRASE = [
    # law & paperwork
    ("How do I renew my passport by mail in the US?", "what's the process for renewing a US passport by mail"),
    ("Can my landlord keep my security deposit for normal wear and tear?", "is a landlord allowed to keep the security deposit for ordinary wear and tear"),
    ("What documents do I need to change my name after marriage?", "which papers are required to change my name after getting married?"),
    ("how long do i have to contest a parking ticket in california", "In California, what is the deadline to contest a parking ticket?"),
    ("Explain what a power of attorney is.", "What is a power of attorney? Please explain."),
    ("Do I need a notary for a will to be valid in Texas?", "does a will have to be notarized to be valid in texas"),
    ("What's the difference between a will and a living trust?", "will vs living trust: what's the difference?"),
    ("How do I file a small claims case for $2,000?", "how do i file a small claims suit for 2000 dollars"),
    # parenting
    ("When should my baby start eating solid food?", "at what age should babies start on solid foods?"),
    ("How can I get my 3 year old to sleep through the night?", "tips for getting a 3-year-old to sleep thru the night"),
    ("My toddler bites other kids at daycare, what should I do?", "What should I do about my toddler biting other children at daycare?"),
    ("How much screen time is OK for a 6-year-old?", "what is an acceptable amount of screen time for a six year old"),
    ("Give me ideas for a rainy day activity with two kids aged 4 and 7.", "rainy day activity ideas for 2 kids, ages 4 and 7?"),
    ("How do I talk to my teenager about vaping?", "what's a good way to discuss vaping with my teen"),
    # gardening
    ("When should I plant tomatoes in zone 6?", "what's the right time to plant tomatoes in USDA zone 6"),
    ("Why are the leaves on my basil turning yellow?", "my basil leaves are going yellow, why?"),
    ("How often should I water a snake plant?", "how frequently do snake plants need watering"),
    ("how do I get rid of aphids on roses without chemicals", "What's a chemical-free way to get rid of aphids on my roses?"),
    ("Can I compost citrus peels?", "is it ok to put citrus peels in compost?"),
    ("How deep should I plant garlic cloves?", "what depth do garlic cloves need to be planted at"),
    ("What is the best way to prune a hydrangea in fall?", "best way to prune hydrangeas in the fall?"),
    # car maintenance
    ("How often should I change the oil in a 2015 Honda Civic?", "oil change interval for a 2015 honda civic?"),
    ("What does the check engine light mean if it's flashing?", "my check engine light is flashing, what does that mean"),
    ("How do I jump start a car with a dead battery?", "steps to jump-start a car that has a dead battery"),
    ("Why does my car squeal when I brake?", "what causes a squealing noise when braking"),
    ("What tire pressure should I use for a Toyota RAV4?", "recommended tire pressure toyota rav4"),
    ("Is it bad to drive with the low coolant warning on?", "can I keep driving when the low coolant light is on, or is that bad?"),
    ("How do I replace the wiper blades on my car?", "how to change car windshield wiper blades"),
    # music theory
    ("What notes are in a C major chord?", "which notes make up a C major chord"),
    ("Explain the circle of fifths in simple terms.", "Can you explain the circle of fifths simply?"),
    ("What is the relative minor of G major?", "G major's relative minor is what?"),
    ("how many sharps are in the key of E major", "How many sharps does E major have?"),
    ("What's the difference between a major and a minor scale?", "major scale vs minor scale, what is the difference"),
    ("What does 6/8 time signature mean?", "explain what a 6/8 time signature means"),
    # sports rules
    ("What is the offside rule in soccer?", "explain the offside rule in football (soccer)"),
    ("How does scoring work in tennis?", "how do you keep score in tennis"),
    ("What is a balk in baseball?", "in baseball, what counts as a balk?"),
    ("How many players are on a basketball team on the court?", "how many basketball players from one team are on the court at once"),
    ("What's the difference between a try and a conversion in rugby?", "rugby: try vs conversion, what's the difference?"),
    ("When is a let called in tennis?", "in tennis when do they call a let"),
    # pets
    ("Can dogs eat grapes?", "are grapes safe for dogs to eat?"),
    ("How often should I feed my 10-week-old kitten?", "how many times a day should a 10 week old kitten be fed"),
    ("My cat keeps peeing outside the litter box, why?", "why does my cat keep urinating outside the litter box?"),
    ("how do i crate train a puppy", "What's the best way to crate-train a puppy?"),
    ("What temperature should a leopard gecko tank be?", "ideal tank temperature for a leopard gecko?"),
    ("How do I trim my dog's nails without hurting him?", "how can I cut my dog's nails without hurting him"),
    # home repair
    ("How do I fix a running toilet?", "my toilet keeps running, how do I fix it"),
    ("How do I patch a small hole in drywall?", "what's the easiest way to patch a small drywall hole"),
    ("Why is my kitchen sink draining slowly?", "what makes a kitchen sink drain slow?"),
    ("how to unclog a bathtub drain without a plunger", "How can I unclog a bathtub drain if I don't have a plunger?"),
    ("What size nail should I use to hang a 20 lb mirror?", "what nail size do I need to hang a 20-pound mirror"),
    ("How do I reset a tripped GFCI outlet?", "steps to reset a GFCI outlet that tripped"),
    ("What causes a ceiling fan to wobble?", "why does my ceiling fan wobble?"),
    # personal finance
    ("What's the difference between a Roth IRA and a traditional IRA?", "Roth IRA vs traditional IRA - what's the difference?"),
    ("How much should I have in an emergency fund?", "how big should my emergency fund be"),
    ("Should I pay off my credit card or invest first?", "is it better to pay off credit card debt first or to invest?"),
    ("What is a good credit score?", "what counts as a good credit score"),
    ("How does compound interest work?", "explain how compound interest works"),
    ("What is the 50/30/20 budgeting rule?", "explain the 50/30/20 rule for budgets"),
    ("Is it worth refinancing a mortgage to save 1%?", "does refinancing a mortgage make sense to save one percent?"),
    # job hunting
    ("How do I answer 'what is your greatest weakness' in an interview?", "what's a good answer to the interview question what's your greatest weakness"),
    ("Should I include a photo on my resume in the US?", "is it ok to put a photo on a resume in the United States?"),
    ("How long should a cover letter be?", "what's the right length for a cover letter"),
    ("how do i negotiate a higher salary offer", "What's the best way to negotiate a higher salary after getting an offer?"),
    ("How do I explain a two-year employment gap on my resume?", "how to explain a 2 year gap in employment on a resume"),
    ("Write a thank you email after a job interview.", "Can you write me a thank-you email to send after a job interview?"),
    # fitness
    ("How many rest days a week should I take when lifting?", "how many rest days per week do i need for weightlifting"),
    ("What is a good beginner running plan for a 5K?", "beginner 5k running plan?"),
    ("How do I do a proper push-up?", "what is the correct form for a push up"),
    ("Is it better to stretch before or after a workout?", "should I stretch before or after working out?"),
    ("how can I increase my pull up count", "What's the best way to increase the number of pull-ups I can do?"),
    ("What muscles do deadlifts work?", "which muscles are worked by deadlifts"),
    # nutrition
    ("How much protein do I need per day if I weigh 70 kg?", "daily protein requirement for a 70kg person?"),
    ("Is brown rice healthier than white rice?", "is white rice less healthy than brown rice?"),
    ("What foods are high in iron?", "which foods contain a lot of iron"),
    ("How many calories are in a banana?", "calories in one banana?"),
    ("Are eggs bad for cholesterol?", "do eggs raise cholesterol in a bad way?"),
    ("what is intermittent fasting", "Can you explain what intermittent fasting is?"),
    # astronomy
    ("Why is Mars red?", "what makes mars look red"),
    ("How far is the Moon from Earth?", "what's the distance between the earth and the moon"),
    ("What is a light year?", "explain what a light-year is"),
    ("When is the next total solar eclipse visible from the US?", "next total solar eclipse visible in the United States: when?"),
    ("Why does Saturn have rings?", "how come Saturn has rings?"),
    ("What is the difference between a meteor and a meteorite?", "meteor vs meteorite difference"),
    # chemistry homework
    ("Balance this equation: H2 + O2 -> H2O", "can you balance H2 + O2 -> H2O"),
    ("What is the molar mass of NaCl?", "molar mass of sodium chloride (NaCl)?"),
    ("How do I calculate the pH of a 0.01 M HCl solution?", "calculate pH of 0.01M HCl"),
    ("What is an exothermic reaction?", "explain what an exothermic reaction is"),
    ("Why is water a polar molecule?", "what makes water molecules polar"),
    ("How many moles are in 36 grams of water?", "how many mol of water is 36 g?"),
    # literature
    ("What is the main theme of To Kill a Mockingbird?", "what's the central theme in To Kill a Mockingbird"),
    ("Summarize the plot of Pride and Prejudice.", "give me a summary of the plot of pride and prejudice"),
    ("Who is the narrator in The Great Gatsby?", "who narrates the great gatsby?"),
    ("What does the green light symbolize in The Great Gatsby?", "symbolism of the green light in The Great Gatsby?"),
    ("Explain what iambic pentameter is.", "what is iambic pentameter?"),
    ("Why did Macbeth kill Duncan?", "what was Macbeth's reason for killing Duncan?"),
    # film
    ("What is the ending of Inception supposed to mean?", "what does the ending of inception mean"),
    ("Who directed the movie Parasite?", "who was the director of Parasite (the film)?"),
    ("Recommend some movies like Interstellar.", "can you recommend films similar to Interstellar?"),
    ("What is the order to watch the Star Wars movies?", "in what order should I watch the star wars films"),
    ("What is a dolly zoom in filmmaking?", "explain the dolly zoom camera technique"),
    # philosophy
    ("What is the trolley problem?", "explain the trolley problem"),
    ("What did Descartes mean by 'I think, therefore I am'?", "meaning of Descartes' 'I think therefore I am'?"),
    ("What's the difference between utilitarianism and deontology?", "utilitarianism vs deontology, how do they differ?"),
    ("Explain Plato's allegory of the cave.", "can you explain the allegory of the cave by Plato"),
    ("What is existentialism in simple terms?", "explain existentialism simply"),
    # statistics
    ("What is a p-value?", "explain what a p value is"),
    ("What's the difference between mean and median?", "mean vs median: what's the difference"),
    ("How do I calculate standard deviation by hand?", "how to compute the standard deviation manually"),
    ("When should I use a t-test instead of a z-test?", "t-test vs z-test, when do I use the t test?"),
    ("What does a correlation of 0.8 mean?", "how should I interpret a correlation coefficient of 0.8"),
    ("Explain the central limit theorem.", "what is the central limit theorem?"),
    # spreadsheets
    ("How do I use VLOOKUP in Excel?", "how to use vlookup in excel"),
    ("In Google Sheets, how do I count cells that contain the word 'done'?", "google sheets formula to count cells containing 'done'"),
    ("How do I freeze the top row in Excel?", "excel: freeze the first row so it stays visible when scrolling"),
    ("What's the formula to sum column B only if column A says 'Paid'?", "formula to sum col B where col A = 'Paid'"),
    ("How do I remove duplicates in Google Sheets?", "how can i delete duplicate rows in google sheets"),
    ("How do I convert a date to the day of the week in Excel?", "excel formula to get the weekday name from a date"),
    ("What's the difference between INDEX MATCH and VLOOKUP?", "index/match vs vlookup - what's the difference"),
    # devops
    ("How do I list all running Docker containers?", "docker command to show running containers"),
    ("How do I see the logs of a pod in Kubernetes?", "how to view k8s pod logs"),
    ("What is the difference between a Docker image and a container?", "docker image vs container?"),
    ("How do I restart a deployment in Kubernetes?", "how to restart a k8s deployment"),
    ("How do I reduce the size of my Docker image?", "tips for making docker images smaller"),
    ("What is a Kubernetes Ingress?", "explain what an ingress is in k8s"),
    ("How do I pass environment variables to a Docker container?", "how to set env vars when running a docker container"),
    # networking
    ("What is the difference between TCP and UDP?", "tcp vs udp differences"),
    ("What does a subnet mask of 255.255.255.0 mean?", "meaning of subnet mask 255.255.255.0"),
    ("How do I find my IP address on Windows?", "how can I check my ip address on a windows pc"),
    ("What is DNS and how does it work?", "how does DNS work? what is it"),
    ("Why is my Wi-Fi slow at night?", "why does my wifi get slow in the evenings at night"),
    # customer support (imaginary product: Zentro smart thermostat / Brightly app)
    ("How do I reset my Zentro thermostat to factory settings?", "factory reset zentro thermostat how?"),
    ("My Zentro thermostat shows error E4, what does it mean?", "what does error code E4 mean on a Zentro thermostat"),
    ("How do I cancel my Brightly Plus subscription?", "how can i cancel brightly plus"),
    ("Can I connect my Zentro thermostat to Google Home, and how?", "does the Zentro thermostat work with google home, and how do I connect it"),
    ("Where can I find my Brightly order number?", "where is my order number for brightly"),
    # HR policy
    ("How many days of paid parental leave do we get?", "how much paid parental leave does the company give, in days"),
    ("Can I carry over unused vacation days to next year?", "are unused PTO days carried over into next year?"),
    ("What's the policy for working from home on Fridays?", "what is our WFH policy for Fridays"),
    ("How do I submit an expense report for a client dinner?", "how to file an expense report for a dinner with a client"),
    ("Who do I contact to report harassment at work?", "who should I contact to report workplace harassment"),
    # travel logistics
    ("Do I need a visa to visit Japan with a US passport?", "US passport holder traveling to japan - do I need a visa?"),
    ("How early should I arrive at the airport for an international flight?", "how early do I need to get to the airport for an international flight"),
    ("Can I bring a power bank in checked luggage?", "are power banks allowed in checked baggage?"),
    ("What's the cheapest way to get from Heathrow to central London?", "cheapest way from heathrow airport to central london"),
    ("How do I get a refund for a cancelled flight in the EU?", "cancelled flight in the EU: how do I get my money back?"),
    # language learning
    ("What's the difference between ser and estar in Spanish?", "ser vs estar in spanish, what's the difference"),
    ("How long does it take to learn Japanese to JLPT N3?", "how long to get to JLPT N3 level in Japanese"),
    ("When do you use 'tu' vs 'vous' in French?", "french: when to use tu and when to use vous?"),
    ("What is the best way to memorize German noun genders?", "best way to memorise the genders of german nouns"),
    # long detailed positives
    ("I'm a 34-year-old teacher earning $52,000 a year with $8,000 in credit card debt at 22% APR and $3,000 in savings. Should I use my savings to pay down the debt or keep it as an emergency fund? Please explain the tradeoffs.",
     "I'm 34, a teacher, I make $52,000/year. I have $3,000 saved and $8,000 of credit card debt at 22% APR. Please explain the tradeoffs: should I keep the savings as an emergency fund or use them to pay down the debt?"),
    ("I have a Google Sheet with names in column A, departments in column B and salaries in column C. I want a formula that gives me the average salary for the Marketing department only, ignoring blank cells. What should I write?",
     "Google Sheets: column A names, column B departments, column C salaries. What formula returns the average salary for just the Marketing department, ignoring blank cells?"),
    ("We run a small Node app in Docker on a single VPS and want to move it to Kubernetes. What are the main steps, what resources would we need to write (Deployment, Service, Ingress), and what are common pitfalls for a first migration?",
     "what are the main steps to move a small node app that runs in docker on one VPS to k8s? which resources do we need to write (deployment, service, ingress) and what are the common pitfalls in a first migration"),
    ("My 2012 Ford Focus makes a grinding noise when I turn the steering wheel at low speeds, especially in parking lots. The power steering fluid looks fine. What could be causing this and is it safe to keep driving?",
     "2012 Ford Focus: grinding noise when turning the steering wheel at low speed (mostly in parking lots). Power steering fluid looks ok. What might cause it, and is it safe to keep driving?"),
    ("My daughter is 9 and gets very anxious before school tests, to the point of stomach aches. How can I help her manage test anxiety at home without putting more pressure on her?",
     "How can I help my 9 year old daughter deal with test anxiety at home without adding pressure? She gets so anxious before school tests that she gets stomach aches."),
    ("I started at the company in June, I'm on a 6-month probation, and my sister is getting married abroad in October. I'd need five working days off. Am I allowed to take paid vacation during probation, and if not, can I take unpaid leave instead? Who approves it?",
     "Who approves time off, and can I take paid vacation during probation? If not, is unpaid leave an option? Context: I joined in June, probation is 6 months, and I need five working days off in October for my sister's wedding abroad."),
    # very short
    ("k8s vs docker swarm", "Kubernetes vs Docker Swarm?"),
    ("define entropy", "what is entropy? define it"),
    ("roth ira limits", "What are the Roth IRA contribution limits?"),
]

CHANGED_NUMBER = [
    ("How often should I change the oil in a 2015 Honda Civic?", "How often should I change the oil in a 1998 Honda Civic?"),
    ("How much protein do I need per day if I weigh 70 kg?", "How much protein do I need per day if I weigh 95 kg?"),
    ("How do I calculate the pH of a 0.01 M HCl solution?", "How do I calculate the pH of a 0.5 M HCl solution?"),
    ("How many moles are in 36 grams of water?", "How many moles are in 90 grams of water?"),
    ("What size nail should I use to hang a 20 lb mirror?", "What size nail should I use to hang a 60 lb mirror?"),
    ("How often should I feed my 10-week-old kitten?", "How often should I feed my 6-month-old kitten?"),
    ("How much screen time is OK for a 6-year-old?", "How much screen time is OK for a 2-year-old?"),
    ("How many sharps are in the key of E major?", "How many sharps are in the key of B major?"),
    ("What does 6/8 time signature mean?", "What does 3/4 time signature mean?"),
    ("Is it worth refinancing a mortgage to save 1%?", "Is it worth refinancing a mortgage to save 0.25%?"),
    ("How do I explain a two-year employment gap on my resume?", "How do I explain a two-month employment gap on my resume?"),
    ("How long does it take to learn Japanese to JLPT N3?", "How long does it take to learn Japanese to JLPT N1?"),
    ("What are the Roth IRA contribution limits for 2023?", "What are the Roth IRA contribution limits for 2025?"),
    ("How do I file a small claims case for $2,000?", "How do I file a small claims case for $25,000?"),
    ("What does a subnet mask of 255.255.255.0 mean?", "What does a subnet mask of 255.255.240.0 mean?"),
    ("What does a correlation of 0.8 mean?", "What does a correlation of -0.2 mean?"),
    ("Give me ideas for a rainy day activity with two kids aged 4 and 7.", "Give me ideas for a rainy day activity with two kids aged 12 and 15."),
    ("When should I plant tomatoes in zone 6?", "When should I plant tomatoes in zone 9?"),
    ("How do I upgrade my cluster from Kubernetes 1.27 to 1.28?", "How do I upgrade my cluster from Kubernetes 1.24 to 1.29?"),
    ("How many calories are in a banana?", "How many calories are in three bananas?"),
    ("Convert 350 degrees Fahrenheit to Celsius for my oven.", "Convert 425 degrees Fahrenheit to Celsius for my oven."),
    ("What is a good beginner running plan for a 5K?", "What is a good beginner running plan for a half marathon (21K)?"),
    ("If I invest $200 a month at 7% for 30 years, how much will I have?", "If I invest $200 a month at 7% for 10 years, how much will I have?"),
    ("Excel formula to sum the values in A1 to A10", "Excel formula to sum the values in A1 to A100 on Sheet2"),
    ("Scale my Kubernetes deployment web to 3 replicas", "scale my kubernetes deployment web to 12 replicas"),
    ("Is it safe to leave my dog alone for 4 hours?", "Is it safe to leave my dog alone for 12 hours?"),
    ("How many days of paid parental leave do we get after 1 year of employment?", "How many days of paid parental leave do we get after 5 years of employment?"),
    ("What was the top tax bracket in the US in 1960?", "What was the top tax bracket in the US in 2010?"),
    ("Roll two dice: what's the probability of getting a sum of 7?", "Roll two dice: what's the probability of getting a sum of 11?"),
    ("What gauge wire do I need for a 20 amp circuit?", "What gauge wire do I need for a 50 amp circuit?"),
    ("I'm a 34-year-old teacher earning $52,000 a year with $8,000 in credit card debt at 22% APR and $3,000 in savings. Should I use my savings to pay down the debt or keep it as an emergency fund? Please explain the tradeoffs.",
     "I'm a 34-year-old teacher earning $52,000 a year with $8,000 in credit card debt at 22% APR and $30,000 in savings. Should I use my savings to pay down the debt or keep it as an emergency fund? Please explain the tradeoffs."),
]

NEGATION = [
    ("Can dogs eat grapes?", "Why can't dogs eat grapes even though they can eat blueberries?"),
    ("How do I increase my credit score quickly?", "What things decrease my credit score quickly?"),
    ("What are the benefits of static stretching before a workout?", "What are the risks of static stretching before a workout?"),
    ("What are the pros of leasing a car?", "What are the cons of leasing a car?"),
    ("What foods are high in iron?", "What foods are low in iron?"),
    ("What can I bring in my carry-on bag?", "What am I not allowed to bring in my carry-on bag?"),
    ("Which plants are safe for cats?", "Which plants are toxic to cats?"),
    ("How do I turn on auto-restart for a Docker container?", "How do I turn off auto-restart for a Docker container?"),
    ("What should I eat before a morning run?", "What should I eat after a morning run?"),
    ("How do I raise the pH of my garden soil?", "How do I lower the pH of my garden soil?"),
    ("Things to do before a job interview", "Things you should never do in a job interview"),
    ("How do I add someone as an authorized user on my credit card?", "How do I remove an authorized user from my credit card?"),
    ("Is overtime allowed for part-time employees?", "Is overtime forbidden for part-time employees?"),
    ("Why does my car pull to the left when braking?", "Why does my car pull to the left when I'm not braking?"),
    ("Write a formula in Sheets that counts cells that are empty", "write a formula in sheets that counts cells that are not empty"),
    ("How do I enable IPv6 on my router?", "How do I disable IPv6 on my router?"),
    ("What are the advantages of a high-interest savings account?", "What are the disadvantages of a high-interest savings account?"),
    ("Which chords sound happy?", "which chords sound sad?"),
    ("Is a handball a foul in soccer if it's accidental?", "Is a handball a foul in soccer if it's deliberate?"),
    ("How do I speed up dough rising?", "How do I slow down dough rising?"),
    ("How do I make my Zentro thermostat increase the temperature at night?", "How do I make my Zentro thermostat decrease the temperature at night?"),
    ("Arguments for free will", "arguments against free will"),
    ("Is it legal to record a phone call without consent in California?", "Is it legal to record a phone call with consent in California?"),
    ("Why does the boiling point of water drop as altitude increases?", "Why does the boiling point of water rise as pressure increases?"),
    ("Should I water my lawn in the morning?", "Why shouldn't I water my lawn in the evening?"),
    ("What happens if I exceed my Kubernetes pod memory limit?", "What happens if my pod stays under its Kubernetes memory limit but above the request?"),
    ("Signs that a puppy is healthy", "signs that a puppy is sick"),
    ("Can I take vacation days during my probation period?", "Can I take vacation days after my probation period ends?"),
    ("How do I increase the rate of a chemical reaction?", "How do I decrease the rate of a chemical reaction?"),
    ("How do I merge cells in Excel?", "How do I unmerge cells in Excel?"),
    ("Our team is deciding whether to adopt a four-day work week for the engineering department starting next quarter. Can you list the main arguments in favour of it, with evidence from companies that have tried it, so I can present them to leadership?",
     "Our team is deciding whether to adopt a four-day work week for the engineering department starting next quarter. Can you list the main arguments against it, with evidence from companies that have tried it, so I can present them to leadership?"),
]

OTHER_ENTITY = [
    ("What tire pressure should I use for a Toyota RAV4?", "What tire pressure should I use for a Ford F-150?"),
    ("Can dogs eat grapes?", "Can dogs eat strawberries?"),
    ("Who directed the movie Parasite?", "Who directed the movie Oldboy?"),
    ("What is the main theme of To Kill a Mockingbird?", "What is the main theme of Of Mice and Men?"),
    ("What is the relative minor of G major?", "What is the relative minor of F major?"),
    ("Why is Mars red?", "Why is Neptune blue?"),
    ("What is the molar mass of NaCl?", "What is the molar mass of KCl?"),
    ("Do I need a visa to visit Japan with a US passport?", "Do I need a visa to visit China with a US passport?"),
    ("What's the cheapest way to get from Heathrow to central London?", "What's the cheapest way to get from Gatwick to central London?"),
    ("How do I see the logs of a pod in Kubernetes?", "How do I see the logs of a service in Docker Compose?"),
    ("How do I use VLOOKUP in Excel?", "How do I use XLOOKUP in Excel?"),
    ("How do I reset my Zentro thermostat to factory settings?", "How do I reset my Zentro doorbell camera to factory settings?"),
    ("How do I cancel my Brightly Plus subscription?", "How do I cancel my Netflix subscription?"),
    ("Why did Macbeth kill Duncan?", "Why did Hamlet kill Polonius?"),
    ("What did Descartes mean by 'I think, therefore I am'?", "What did Nietzsche mean by 'God is dead'?"),
    ("What temperature should a leopard gecko tank be?", "What temperature should a bearded dragon tank be?"),
    ("How do I prune a hydrangea in fall?", "How do I prune a lilac in fall?"),
    ("What is a balk in baseball?", "What is a let in tennis?"),
    ("Does a will have to be notarized to be valid in Texas?", "Does a will have to be notarized to be valid in New York?"),
    ("What's the difference between ser and estar in Spanish?", "What's the difference between por and para in Spanish?"),
    ("How do I restart a deployment in Kubernetes?", "How do I restart a statefulset in Kubernetes?"),
    ("How do I find my IP address on Windows?", "How do I find my IP address on a Mac?"),
    ("Recommend some movies like Interstellar.", "Recommend some movies like The Notebook."),
    ("How many players are on a basketball team on the court?", "How many players are on a volleyball team on the court?"),
    ("What muscles do deadlifts work?", "What muscles do lunges work?"),
    ("Who narrates The Great Gatsby?", "Who narrates Moby-Dick?"),
    ("How do I get a refund for a cancelled Ryanair flight?", "How do I get a refund for a cancelled Delta flight?"),
    ("In Google Sheets, how do I count cells that contain the word 'done'?", "In Google Sheets, how do I count cells that contain the word 'blocked'?"),
    ("How do I crate train a puppy?", "How do I litter train a rabbit?"),
    ("What are the tax benefits of a 401(k)?", "What are the tax benefits of an HSA?"),
    ("My 2012 Ford Focus makes a grinding noise when I turn the steering wheel at low speeds, especially in parking lots. The power steering fluid looks fine. What could be causing this and is it safe to keep driving?",
     "My 2012 Ford Focus makes a grinding noise when I press the brake pedal at low speeds, especially in parking lots. The brake fluid looks fine. What could be causing this and is it safe to keep driving?"),
]

OTHER_LANGUAGE = [
    ("How do I renew my passport by mail?", "¿Cómo renuevo mi pasaporte por correo?"),
    ("Can dogs eat grapes?", "Les chiens peuvent-ils manger du raisin ?"),
    ("How often should I water a snake plant?", "Wie oft sollte ich eine Bogenhanf-Pflanze gießen?"),
    ("What is a p-value?", "O que é um valor-p?"),
    ("How do I list all running Docker containers?", "Come faccio a elencare tutti i container Docker in esecuzione?"),
    ("Explain the offside rule in soccer.", "Explica la regla del fuera de juego en el fútbol."),
    ("What is the trolley problem?", "Qu'est-ce que le dilemme du tramway ?"),
    ("How do I freeze the top row in Excel?", "Wie fixiere ich die oberste Zeile in Excel?"),
    ("Summarize the plot of Pride and Prejudice.", "Summarize the plot of Pride and Prejudice in French."),
    ("Explain what compound interest is.", "Explain what compound interest is, but answer in Spanish please."),
    ("Write a thank you email after a job interview.", "Write a thank you email after a job interview, in German."),
    ("What notes are in a C major chord?", "Quali note compongono un accordo di do maggiore?"),
    ("Why is the sky blue?", "なぜ空は青いのですか？"),
    ("How do I fix a running toilet?", "Como consertar uma descarga que não para de correr?"),
    ("What is the difference between TCP and UDP?", "В чем разница между TCP и UDP?"),
    ("How many calories are in a banana?", "Combien de calories y a-t-il dans une banane ?"),
    ("Who directed the movie Parasite?", "Wer hat den Film Parasite gedreht?"),
    ("How do I cancel my Brightly Plus subscription?", "¿Cómo cancelo mi suscripción a Brightly Plus?"),
    ("Can I carry over unused vacation days to next year?", "Kann ich nicht genommene Urlaubstage ins nächste Jahr übertragen?"),
    ("How do I see the logs of a pod in Kubernetes?", "Kubernetes에서 파드 로그를 보려면 어떻게 하나요?"),
    ("What is existentialism in simple terms?", "Explain existentialism in simple terms, in Italian."),
    ("Give me 5 tips for a beginner 5K runner.", "Dame 5 consejos para un corredor principiante de 5K."),
    ("What's the difference between a meteor and a meteorite?", "Qual a diferença entre meteoro e meteorito?"),
    ("Do I need a visa to visit Japan with a US passport?", "Ho bisogno di un visto per visitare il Giappone con un passaporto statunitense?"),
    ("What foods are high in iron?", "Welche Lebensmittel sind reich an Eisen?"),
    ("Is it better to stretch before or after a workout?", "¿Es mejor estirar antes o después de entrenar?"),
    ("Describe the main characters in Don Quixote.", "Describe los personajes principales de Don Quijote."),
    ("My Zentro thermostat lost its Wi-Fi connection after I changed my router. The screen shows error E4 and the app says the device is offline. I already restarted the thermostat twice. What are the steps to reconnect it to the new network?",
     "Mon thermostat Zentro a perdu sa connexion Wi-Fi après que j'ai changé de routeur. L'écran affiche l'erreur E4 et l'application indique que l'appareil est hors ligne. Je l'ai déjà redémarré deux fois. Quelles sont les étapes pour le reconnecter au nouveau réseau ?"),
    ("How do I jump start a car with a dead battery?", "Comment démarrer une voiture avec une batterie à plat ?"),
]

CHANGED_TASK = [
    ("Summarize the plot of Pride and Prejudice.", "Write a short essay analyzing the themes of Pride and Prejudice."),
    ("Explain what iambic pentameter is.", "Write a four-line poem in iambic pentameter."),
    ("What is a cover letter?", "Write a cover letter for a junior accountant position."),
    ("Translate 'where is the train station' into Japanese.", "Explain the grammar of 'eki wa doko desu ka' in Japanese."),
    ("Explain how VLOOKUP works in Excel.", "Fix my VLOOKUP formula, it returns #N/A: =VLOOKUP(A2,Sheet2!A:B,3,FALSE)"),
    ("What is a Kubernetes Deployment?", "Write a Kubernetes Deployment YAML for nginx with 2 replicas."),
    ("Explain what a Dockerfile is.", "Review my Dockerfile and suggest improvements: FROM node:18\nCOPY . .\nRUN npm install\nCMD node index.js"),
    ("What is the trolley problem?", "Give me three criticisms of the trolley problem as a thought experiment."),
    ("Summarize our parental leave policy.", "Draft an email to my manager requesting parental leave starting in March."),
    ("List the symptoms of parvo in dogs.", "How is parvo in dogs treated?"),
    ("Explain the circle of fifths.", "Quiz me on the circle of fifths with 5 questions."),
    ("What is a power of attorney?", "Draft a simple power of attorney document for my mother."),
    ("Rewrite this sentence to sound more formal: 'hey, can u send me the report asap'", "Translate into Spanish: 'hey, can u send me the report asap'"),
    ("Explain what a p-value is.", "Calculate the p-value for a z-score of 2.1 (two-tailed)."),
    ("What does the green light symbolize in The Great Gatsby?", "Find three quotes about the green light in The Great Gatsby."),
    ("Explain the rules of chess castling.", "Make a mnemonic to help me remember the castling rules in chess."),
    ("Explain how a car alternator works.", "Write a 5-question quiz about how a car alternator works."),
    ("Summarize this email from my landlord about the rent increase.", "Write a reply to my landlord objecting to the rent increase."),
    ("Explain what a Roth IRA is.", "Compare Roth IRA providers and recommend one."),
    ("Give me a recipe for lentil soup.", "Turn a lentil soup recipe into a shopping list for 4 people."),
    ("Translate my resume summary into French: 'Experienced project manager with 10 years in logistics.'", "Proofread my resume summary: 'Experienced project manager with 10 years in logistics.'"),
    ("Explain what an Ingress is in Kubernetes.", "Debug my Ingress: it returns 404 for every path even though the service works."),
    ("List 10 common Spanish irregular verbs.", "Conjugate the Spanish verb 'tener' in the present tense."),
    ("What is the plot of the film Arrival?", "Write a review of the film Arrival."),
    ("Explain the central limit theorem.", "Write Python code that simulates the central limit theorem."),
    ("What is a GFCI outlet?", "How do I install a GFCI outlet?"),
    ("Explain the offside rule in soccer.", "Draw an ASCII diagram showing an offside position in soccer."),
    ("Explain Plato's allegory of the cave.", "Summarize Plato's allegory of the cave in one sentence for a tweet."),
    ("Here is my spreadsheet setup: column A has invoice dates, column B has client names, column C has amounts, and column D says Paid or Unpaid. Explain what the formula =SUMIFS(C:C,D:D,\"Unpaid\",A:A,\"<\"&TODAY()-30) does, step by step.",
     "Here is my spreadsheet setup: column A has invoice dates, column B has client names, column C has amounts, and column D says Paid or Unpaid. Write a formula that highlights overdue unpaid invoices with conditional formatting."),
]

RELATED_TOPIC = [
    ("How do I fix a running toilet?", "How do I fix a leaky faucet?"),
    ("What's the difference between a Roth IRA and a traditional IRA?", "What's the difference between a 401(k) and a 403(b)?"),
    ("How do I crate train a puppy?", "How do I stop my puppy from chewing furniture?"),
    ("When should I plant tomatoes in zone 6?", "How far apart should I space tomato plants?"),
    ("What is the offside rule in soccer?", "How long is a professional soccer match?"),
    ("How do I see the logs of a pod in Kubernetes?", "How do I exec into a running pod in Kubernetes?"),
    ("What is a p-value?", "What is a confidence interval?"),
    ("How do I freeze the top row in Excel?", "How do I make a pivot table in Excel?"),
    ("Why is Mars red?", "Does Mars have water?"),
    ("What is the molar mass of NaCl?", "Why does salt lower the freezing point of water?"),
    ("How do I answer 'what is your greatest weakness' in an interview?", "What questions should I ask the interviewer at the end?"),
    ("How do I talk to my teenager about vaping?", "What's a reasonable curfew for a 16-year-old?"),
    ("What does the check engine light mean if it's flashing?", "How often should I rotate my tires?"),
    ("What notes are in a C major chord?", "What is a diminished seventh chord?"),
    ("How much protein do I need per day?", "Is creatine safe to take every day?"),
    ("What is the trolley problem?", "What is the ship of Theseus paradox?"),
    ("Who directed the movie Parasite?", "What awards did the movie Parasite win?"),
    ("Can I carry over unused vacation days to next year?", "How do I request sick leave?"),
    ("How do I reset my Zentro thermostat to factory settings?", "How do I update the firmware on my Zentro thermostat?"),
    ("Do I need a visa to visit Japan with a US passport?", "Is the Japan Rail Pass worth it for a 10-day trip?"),
    ("What's the difference between ser and estar in Spanish?", "When do I use the subjunctive in Spanish?"),
    ("What is the difference between TCP and UDP?", "What is the difference between IPv4 and IPv6?"),
    ("Can my landlord keep my security deposit for normal wear and tear?", "Can my landlord enter my apartment without notice?"),
    ("How do I do a proper push-up?", "How do I do a proper squat?"),
    ("What is the main theme of To Kill a Mockingbird?", "Who is Boo Radley in To Kill a Mockingbird?"),
    ("How do I reduce the size of my Docker image?", "How do I speed up Docker builds with layer caching?"),
    ("Why does my cat keep peeing outside the litter box?", "Why does my cat throw up after eating?"),
    ("I'm planning a two-week trip to Italy in September with my partner. We like food, art and hiking, and want to avoid big crowds. Can you suggest an itinerary that splits time between cities and countryside?",
     "I'm planning a two-week trip to Italy in September with my partner. What's the best way to handle money there: should we use cash, cards, or a travel card, and how much cash should we carry?"),
]

UNRELATED = [
    ("How do I fix a running toilet?", "What is the relative minor of G major?"),
    ("Can dogs eat grapes?", "How do I restart a deployment in Kubernetes?"),
    ("What is a p-value?", "How do I get a refund for a cancelled flight in the EU?"),
    ("Summarize the plot of Pride and Prejudice.", "What tire pressure should I use for a Toyota RAV4?"),
    ("How much should I have in an emergency fund?", "Why does Saturn have rings?"),
    ("How do I use VLOOKUP in Excel?", "My toddler bites other kids at daycare, what should I do?"),
    ("What is the trolley problem?", "How deep should I plant garlic cloves?"),
    ("thanks!", "How do I negotiate a higher salary offer?"),
    ("What is a balk in baseball?", "How do I cancel my Brightly Plus subscription?"),
    ("Balance this equation: H2 + O2 -> H2O", "Recommend some movies like Interstellar."),
    ("What's the difference between ser and estar in Spanish?", "How do I patch a small hole in drywall?"),
    ("Who do I contact to report harassment at work?", "What does a subnet mask of 255.255.255.0 mean?"),
    ("good morning", "What muscles do deadlifts work?"),
    ("Is brown rice healthier than white rice?", "What did Descartes mean by 'I think, therefore I am'?"),
    ("How do I pass environment variables to a Docker container?", "When should my baby start eating solid food?"),
    ("Write a haiku about autumn.", "What documents do I need to change my name after marriage?"),
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


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(root, "tests", "fixtures", "cache", "heldout.jsonl")
    seen = set()
    rows = []
    for kind, same, pairs in GROUPS:
        for a, b in pairs:
            if a.strip().lower() == b.strip().lower():
                sys.exit(f"identical pair in {kind}: {a!r}")
            key = frozenset((a, b))
            if key in seen:
                sys.exit(f"duplicate pair in {kind}: {a!r} / {b!r}")
            seen.add(key)
            rows.append({"a": a, "b": b, "same": same, "kind": kind})
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    kinds = Counter(r["kind"] for r in rows)
    labels = Counter(r["same"] for r in rows)
    print(f"wrote {len(rows)} pairs to {os.path.relpath(out, root)}")
    for k, _, _ in GROUPS:
        print(f"  {k:15s} {kinds[k]}")
    print(f"  same=true  {labels[True]}")
    print(f"  same=false {labels[False]}")


if __name__ == "__main__":
    main()
